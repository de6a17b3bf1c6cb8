// Package fakeclerk is a stand-in for Clerk's Frontend API, for tests and local
// development: it publishes a JWKS at /.well-known/jwks.json and mints
// Clerk-v2-shaped session tokens signed with an ephemeral RSA key.
//
// It mints a token for anyone who asks. Never expose it beyond a developer's
// machine or a test.
package fakeclerk

import (
	"cmp"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// JWKSPath is where Clerk publishes its JSON Web Key Set, relative to the issuer.
const JWKSPath = "/.well-known/jwks.json"

// KeyBits is the size of the RSA keys, the same as Clerk's.
const KeyBits = 2048

// DefaultTTL is the lifetime of a minted token unless told otherwise; Clerk's
// session tokens live 60 seconds.
const DefaultTTL = 60 * time.Second

// Clerk is a fake Clerk instance. Its methods are safe for concurrent use. As an
// http.Handler it serves:
//
//	GET  /.well-known/jwks.json   the public keys (current first, then retired ones)
//	POST /tokens                  mint a token; optional JSON body, see TokenRequest
//	GET  /token?sub=…&email=…     the same, from query parameters
//
// Both mint endpoints answer {"object":"token","jwt":"…"}.
type Clerk struct {
	issuer string
	mux    *http.ServeMux

	jwksRequests atomic.Int64
	down         atomic.Bool

	mu   sync.Mutex
	keys []jwk.Key // private keys, current first
}

// New returns a fake Clerk whose tokens carry iss = issuer, with one freshly
// generated signing key.
func New(issuer string) (*Clerk, error) {
	c := &Clerk{issuer: issuer}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	c.keys = []jwk.Key{key}

	c.mux = http.NewServeMux()
	c.mux.HandleFunc("GET "+JWKSPath, c.serveJWKS)
	c.mux.HandleFunc("POST /tokens", c.serveMint)
	c.mux.HandleFunc("GET /token", c.serveMint)
	return c, nil
}

func newKey() (jwk.Key, error) {
	raw, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return nil, fmt.Errorf("fakeclerk: generate key: %w", err)
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, fmt.Errorf("fakeclerk: wrap key: %w", err)
	}
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("fakeclerk: key id: %w", err)
	}
	// Clerk's key ids look like "ins_…", named after the instance.
	if err := key.Set(jwk.KeyIDKey, "ins_"+hex.EncodeToString(id[:])); err != nil {
		return nil, err
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.RS256); err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, err
	}
	return key, nil
}

// ServeHTTP serves the JWKS and the mint endpoints.
func (c *Clerk) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Rotate makes a new key current. Retired keys stay in the JWKS, as during a
// real rotation, so tokens signed before it still verify.
func (c *Clerk) Rotate() error {
	key, err := newKey()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys = append([]jwk.Key{key}, c.keys...)
	return nil
}

// KeyID returns the kid of the current key.
func (c *Clerk) KeyID() string {
	return c.current().KeyID()
}

// PublicKey returns the current public key.
func (c *Clerk) PublicKey() *rsa.PublicKey {
	var priv rsa.PrivateKey
	// The key was made from an *rsa.PrivateKey; Raw cannot fail.
	_ = c.current().Raw(&priv)
	return &priv.PublicKey
}

// PublicKeyPEM returns the current public key as a PKIX "PUBLIC KEY" PEM block,
// the form Clerk's dashboard shows for CLERK_JWT_KEY.
func (c *Clerk) PublicKeyPEM() string {
	der, err := x509.MarshalPKIXPublicKey(c.PublicKey())
	if err != nil {
		// Marshalling a valid RSA public key does not fail.
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// JWKS returns the public key set as served.
func (c *Clerk) JWKS() ([]byte, error) {
	c.mu.Lock()
	keys := append([]jwk.Key(nil), c.keys...)
	c.mu.Unlock()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil {
			return nil, err
		}
		if err := set.AddKey(pub); err != nil {
			return nil, err
		}
	}
	return json.Marshal(set)
}

// SetDown makes the JWKS endpoint answer 503 (true) or serve again (false), to
// play an outage.
func (c *Clerk) SetDown(down bool) { c.down.Store(down) }

// JWKSRequests returns how many times the JWKS endpoint was asked, including
// while down.
func (c *Clerk) JWKSRequests() int64 { return c.jwksRequests.Load() }

func (c *Clerk) current() jwk.Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[0]
}

// Token describes a token to mint. The zero value is a valid session token for
// user "user_test" issued now.
type Token struct {
	Subject         string         // sub; "user_test" when empty (use Omit to drop it)
	SessionID       string         // sid; "sess_test" when empty
	AuthorizedParty string         // azp; left out when empty
	Email           string         // email; left out when empty (Clerk's default tokens have none)
	OrgID           string         // o.id (with o.rol "member"); left out when empty
	Status          string         // sts, e.g. "pending"; left out when empty
	IssuedAt        time.Time      // iat and nbf; now when zero
	TTL             time.Duration  // exp - iat; DefaultTTL when zero
	Claims          map[string]any // extra or overriding claims, set last
	Omit            []string       // claims to remove after everything else

	Algorithm jwa.SignatureAlgorithm // RS256 when empty; others only for tests of refusal
	KeyID     string                 // kid header; the signing key's kid when empty
	Headers   map[string]any         // extra protected headers
}

// Mint returns a compact JWS signed with the current key.
func (c *Clerk) Mint(t Token) (string, error) {
	now := t.IssuedAt
	if now.IsZero() {
		now = time.Now()
	}
	ttl := cmp.Or(t.TTL, DefaultTTL)
	sub := cmp.Or(t.Subject, "user_test")
	sid := cmp.Or(t.SessionID, "sess_test")
	var jti [10]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}

	claims := map[string]any{
		"iss": c.issuer,
		"sub": sub,
		"sid": sid,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"fva": []int{0, -1},
		"jti": hex.EncodeToString(jti[:]),
		"v":   2,
	}
	if t.AuthorizedParty != "" {
		claims["azp"] = t.AuthorizedParty
	}
	if t.Email != "" {
		claims["email"] = t.Email
	}
	if t.OrgID != "" {
		claims["o"] = map[string]any{"id": t.OrgID, "rol": "member", "slg": "org"}
	}
	if t.Status != "" {
		claims["sts"] = t.Status
	}
	for k, v := range t.Claims {
		claims[k] = v
	}
	for _, k := range t.Omit {
		delete(claims, k)
	}

	// The claims are marshalled as given, not through jwt.Token, so that tests
	// can mint claims of the wrong type (an "exp" string, an "iss" array).
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("fakeclerk: claims: %w", err)
	}

	key := c.current()
	alg := cmp.Or(t.Algorithm, jwa.RS256)
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	kid := cmp.Or(t.KeyID, key.KeyID())
	if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
		return "", err
	}
	for k, v := range t.Headers {
		if err := hdr.Set(k, v); err != nil {
			return "", fmt.Errorf("fakeclerk: header %q: %w", k, err)
		}
	}
	// The raw key goes to Sign so that the kid header is the one chosen above.
	var raw rsa.PrivateKey
	if err := key.Raw(&raw); err != nil {
		return "", err
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, &raw, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("fakeclerk: sign: %w", err)
	}
	return string(signed), nil
}

// TokenRequest is the optional JSON body of POST /tokens; GET /token takes the
// same names as query parameters.
type TokenRequest struct {
	Subject         string `json:"sub"`
	SessionID       string `json:"sid"`
	Email           string `json:"email"`
	OrgID           string `json:"org_id"`
	AuthorizedParty string `json:"azp"`
	Status          string `json:"sts"`
	TTLSeconds      int    `json:"ttl_seconds"`
}

func (c *Clerk) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	c.jwksRequests.Add(1)
	if c.down.Load() {
		http.Error(w, "fakeclerk is down", http.StatusServiceUnavailable)
		return
	}
	body, err := c.JWKS()
	if err != nil {
		http.Error(w, "fakeclerk: jwks", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(body)
}

func (c *Clerk) serveMint(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if r.Method == http.MethodPost && r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "fakeclerk: bad token request", http.StatusBadRequest)
			return
		}
	} else {
		q := r.URL.Query()
		req = TokenRequest{
			Subject:         q.Get("sub"),
			SessionID:       q.Get("sid"),
			Email:           q.Get("email"),
			OrgID:           q.Get("org_id"),
			AuthorizedParty: q.Get("azp"),
			Status:          q.Get("sts"),
		}
		if s := q.Get("ttl_seconds"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				http.Error(w, "fakeclerk: bad ttl_seconds", http.StatusBadRequest)
				return
			}
			req.TTLSeconds = n
		}
	}
	if req.TTLSeconds < 0 {
		http.Error(w, "fakeclerk: bad ttl_seconds", http.StatusBadRequest)
		return
	}
	signed, err := c.Mint(Token{
		Subject:         req.Subject,
		SessionID:       req.SessionID,
		Email:           req.Email,
		OrgID:           req.OrgID,
		AuthorizedParty: req.AuthorizedParty,
		Status:          req.Status,
		TTL:             time.Duration(req.TTLSeconds) * time.Second,
	})
	if err != nil {
		http.Error(w, "fakeclerk: mint", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{"object": "token", "jwt": signed})
}
