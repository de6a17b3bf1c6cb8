package fakeclerk_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/acme/payments-api/internal/fakeclerk"
)

const issuer = "https://clerk.test.example"

// serve starts a Clerk stand-in behind an httptest server, closed at cleanup.
func serve(t *testing.T) (*fakeclerk.Clerk, *httptest.Server) {
	t.Helper()
	c, err := fakeclerk.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv
}

func fetchSet(t *testing.T, url string) jwk.Set {
	t.Helper()
	res, err := http.Get(url + fakeclerk.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("jwks status = %d, want 200", res.StatusCode)
	}
	body, _ := io.ReadAll(res.Body)
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatalf("parse jwks: %v", err)
	}
	return set
}

func TestClerk(t *testing.T) {
	c, srv := serve(t)

	set := fetchSet(t, srv.URL)
	if got, want := set.Len(), 1; got != want {
		t.Fatalf("keys = %d, want %d", got, want)
	}
	k, _ := set.Key(0)
	if got, want := k.KeyID(), c.KeyID(); got != want {
		t.Errorf("kid = %q, want %q", got, want)
	}
	if _, isPrivate := k.(jwk.RSAPrivateKey); isPrivate {
		t.Fatal("JWKS publishes a private key")
	}

	iat := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	signed, err := c.Mint(fakeclerk.Token{Subject: "user_1", Email: "a@example.com", OrgID: "org_1",
		AuthorizedParty: "http://localhost:3000", IssuedAt: iat})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseString(signed, jwt.WithKeySet(set), jwt.WithIssuer(issuer))
	if err != nil {
		t.Fatalf("minted token does not verify against the JWKS: %v", err)
	}
	if got, want := tok.Subject(), "user_1"; got != want {
		t.Errorf("sub = %q, want %q", got, want)
	}
	if got, want := tok.Expiration().Sub(tok.IssuedAt()), fakeclerk.DefaultTTL; got != want {
		t.Errorf("lifetime = %v, want %v", got, want)
	}
	for _, claim := range []string{"azp", "exp", "fva", "iat", "iss", "jti", "nbf", "sid", "sub", "v", "email", "o"} {
		if _, ok := tok.Get(claim); !ok {
			t.Errorf("claim %q missing", claim)
		}
	}
	msg, err := jws.ParseString(signed)
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if got, want := h.Algorithm().String(), "RS256"; got != want {
		t.Errorf("alg = %q, want %q", got, want)
	}
	if got, want := h.KeyID(), c.KeyID(); got != want {
		t.Errorf("kid header = %q, want %q", got, want)
	}

	// PEM mode: the PEM is the same key.
	block, _ := pem.Decode([]byte(c.PublicKeyPEM()))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("PublicKeyPEM is not a PUBLIC KEY block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.(*rsa.PublicKey).Equal(c.PublicKey()) {
		t.Error("PEM key differs from the signing key")
	}
	if got, want := c.PublicKey().N.BitLen(), fakeclerk.KeyBits; got != want {
		t.Errorf("key bits = %d, want %d", got, want)
	}

	// Rotation: a new current key, the old one still published.
	oldKID := c.KeyID()
	if err := c.Rotate(); err != nil {
		t.Fatal(err)
	}
	if c.KeyID() == oldKID {
		t.Fatal("Rotate kept the kid")
	}
	set = fetchSet(t, srv.URL)
	for _, kid := range []string{oldKID, c.KeyID()} {
		if _, ok := set.LookupKeyID(kid); !ok {
			t.Errorf("kid %q not in JWKS after rotation", kid)
		}
	}
	if _, err := jwt.ParseString(signed, jwt.WithKeySet(set), jwt.WithIssuer(issuer)); err != nil {
		t.Errorf("token from before the rotation: %v", err)
	}

	// Outage.
	before := c.JWKSRequests()
	c.SetDown(true)
	res, err := http.Get(srv.URL + fakeclerk.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got, want := res.StatusCode, http.StatusServiceUnavailable; got != want {
		t.Errorf("down: status = %d, want %d", got, want)
	}
	if got, want := c.JWKSRequests()-before, int64(1); got != want {
		t.Errorf("requests counted = %d, want %d", got, want)
	}
}

func TestMintEndpoints(t *testing.T) {
	_, srv := serve(t)
	set := fetchSet(t, srv.URL)

	tests := []struct {
		name       string
		method     string
		path, body string
		wantStatus int
		wantSub    string
		wantEmail  string
	}{
		{"post json", http.MethodPost, "/tokens", `{"sub":"user_9","email":"x@example.com"}`, 200, "user_9", "x@example.com"},
		{"post empty body", http.MethodPost, "/tokens", ``, 200, "user_test", ""},
		{"get query", http.MethodGet, "/token?sub=user_8&email=y%40example.com", ``, 200, "user_8", "y@example.com"},
		{"post unknown field", http.MethodPost, "/tokens", `{"user":"x"}`, 400, "", ""},
		{"post not json", http.MethodPost, "/tokens", `nope`, 400, "", ""},
		{"bad ttl", http.MethodGet, "/token?ttl_seconds=x", ``, 400, "", ""},
		{"negative ttl", http.MethodGet, "/token?ttl_seconds=-5", ``, 400, "", ""},
		{"wrong method", http.MethodDelete, "/tokens", ``, 405, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if got, want := res.StatusCode, tc.wantStatus; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			if tc.wantStatus != 200 {
				return
			}
			var out struct{ Object, JWT string }
			if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			if got, want := out.Object, "token"; got != want {
				t.Errorf("object = %q, want %q", got, want)
			}
			tok, err := jwt.ParseString(out.JWT, jwt.WithKeySet(set), jwt.WithIssuer(issuer))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if got, want := tok.Subject(), tc.wantSub; got != want {
				t.Errorf("sub = %q, want %q", got, want)
			}
			email, _ := tok.Get("email")
			if got, want := stringOf(email), tc.wantEmail; got != want {
				t.Errorf("email = %q, want %q", got, want)
			}
		})
	}
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

func TestMintOverrides(t *testing.T) {
	c, err := fakeclerk.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := c.Mint(fakeclerk.Token{
		Claims:  map[string]any{"iss": "https://other.example", "custom": "x"},
		Omit:    []string{"exp", "sid"},
		KeyID:   "ins_other",
		Headers: map[string]any{"jku": "https://attacker.example/jwks"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseString(signed, jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Issuer(), "https://other.example"; got != want {
		t.Errorf("iss = %q, want %q", got, want)
	}
	for _, omitted := range []string{"exp", "sid"} {
		if _, ok := tok.Get(omitted); ok {
			t.Errorf("claim %q not omitted", omitted)
		}
	}
	msg, _ := jws.ParseString(signed)
	h := msg.Signatures()[0].ProtectedHeaders()
	if got, want := h.KeyID(), "ins_other"; got != want {
		t.Errorf("kid = %q, want %q", got, want)
	}
	if got, want := h.JWKSetURL(), "https://attacker.example/jwks"; got != want {
		t.Errorf("jku = %q, want %q", got, want)
	}
}
