package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/origin"
)

// TestMiddlewareAttacks runs every attack and edge case through the middleware
// against real RSA keys and a JWKS served over HTTP.
func TestMiddlewareAttacks(t *testing.T) {
	attackerRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	attackerEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	// The verifier's clock stands still at now, so that the cases a few
	// seconds from a window's edge hold however slowly the run goes. Tokens
	// minted with the default iat (the real time) stay within the 5 s skew of
	// it as long as the cases are minted within 5 s.
	s := newClerkServer(t)
	now := time.Now().Truncate(time.Second)
	o := s.options(t)
	o.Now = func() time.Time { return now }
	s.start(t, o)
	clerk := s.clerk
	kid := clerk.KeyID()
	attackerJWK, _ := jwk.FromRaw(attackerRSA.Public())
	_ = attackerJWK.Set(jwk.KeyIDKey, "attacker")
	_ = attackerJWK.Set(jwk.AlgorithmKey, jwa.RS256)
	attackerJWKWithClerkKID, _ := jwk.FromRaw(attackerRSA.Public())
	_ = attackerJWKWithClerkKID.Set(jwk.KeyIDKey, kid)

	// The attacker's own JWKS, to be offered through jku/x5u: it must never be asked.
	var attackerHits atomic.Int64
	attackerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attackerHits.Add(1)
		set := jwk.NewSet()
		_ = set.AddKey(attackerJWK)
		w.Header().Set("Content-Type", "application/json")
		_ = jsonEncode(w, set)
	}))
	defer attackerSrv.Close()

	certDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clerk"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
	}, &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clerk"}}, attackerRSA.Public(), attackerRSA)
	if err != nil {
		t.Fatal(err)
	}

	var chain cert.Chain
	if err := chain.AddString(base64.StdEncoding.EncodeToString(certDER)); err != nil {
		t.Fatal(err)
	}

	pubPEM := clerk.PublicKeyPEM()
	pubDER, _ := x509.MarshalPKIXPublicKey(clerk.PublicKey())
	valid := s.mint(t, fakeclerk.Token{Subject: "user_1", AuthorizedParty: frontend})
	validParts := strings.Split(valid, ".")
	b64 := base64.RawURLEncoding.EncodeToString

	ok := auth.Reason("")
	tests := []struct {
		name    string
		prepare func(*http.Request)
		want    auth.Reason // "" = accepted
		wantID  auth.Identity
	}{
		// Accepted. The first row also makes Clerk's header a remembered
		// one, so every later row that carries it takes that way.
		{name: "valid", prepare: bearer(valid), want: ok, wantID: auth.Identity{UserID: "user_1", SessionID: "sess_test"}},
		{name: "valid with email and org", prepare: bearer(s.mint(t, fakeclerk.Token{Subject: "user_2", SessionID: "sess_2", Email: "u@example.com", OrgID: "org_7", AuthorizedParty: frontend})),
			want: ok, wantID: auth.Identity{UserID: "user_2", SessionID: "sess_2", Email: "u@example.com", OrgID: "org_7"}},
		{name: "v1 org_id claim", prepare: bearer(s.mint(t, fakeclerk.Token{Subject: "user_3", Claims: map[string]any{"org_id": "org_v1"}})),
			want: ok, wantID: auth.Identity{UserID: "user_3", SessionID: "sess_test", OrgID: "org_v1"}},
		{name: "email null from a template", prepare: bearer(s.mint(t, fakeclerk.Token{Subject: "user_4", Claims: map[string]any{"email": nil}})),
			want: ok, wantID: auth.Identity{UserID: "user_4", SessionID: "sess_test"}},
		{name: "lowercase bearer scheme", prepare: func(r *http.Request) { r.Header.Set("Authorization", "bearer "+valid) }, want: ok, wantID: auth.Identity{UserID: "user_1", SessionID: "sess_test"}},
		{name: "uppercase scheme, extra spaces", prepare: func(r *http.Request) { r.Header.Set("Authorization", "BEARER   "+valid+" ") }, want: ok, wantID: auth.Identity{UserID: "user_1", SessionID: "sess_test"}},
		{name: "listed second azp", prepare: bearer(s.mint(t, fakeclerk.Token{Subject: "user_5", AuthorizedParty: "https://app.payments.example"})), want: ok, wantID: auth.Identity{UserID: "user_5", SessionID: "sess_test"}},
		{name: "missing azp", prepare: bearer(s.mint(t, fakeclerk.Token{Subject: "user_6"})), want: ok, wantID: auth.Identity{UserID: "user_6", SessionID: "sess_test"}},
		{name: "expired within skew", prepare: bearer(s.mint(t, fakeclerk.Token{Subject: "user_7", IssuedAt: now.Add(-62 * time.Second)})), want: ok, wantID: auth.Identity{UserID: "user_7", SessionID: "sess_test"}},
		{name: "exp as numeric string", prepare: bearer(s.mint(t, fakeclerk.Token{Subject: "user_9", Claims: map[string]any{"exp": itoa(now.Add(time.Minute).Unix())}})), want: ok, wantID: auth.Identity{UserID: "user_9", SessionID: "sess_test"}},
		{name: "nbf in future within skew", prepare: bearer(s.mint(t, fakeclerk.Token{Subject: "user_8", Claims: map[string]any{"nbf": now.Add(3 * time.Second).Unix()}})), want: ok, wantID: auth.Identity{UserID: "user_8", SessionID: "sess_test"}},

		// No credentials.
		{name: "no header", prepare: nil, want: auth.ReasonMissing},
		{name: "empty header", prepare: func(r *http.Request) { r.Header.Set("Authorization", "") }, want: auth.ReasonMissing},
		{name: "bearer without token", prepare: func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, want: auth.ReasonMissing},
		{name: "basic scheme", prepare: func(r *http.Request) { r.SetBasicAuth("user", valid) }, want: auth.ReasonMissing},
		{name: "token in query string ignored", prepare: func(r *http.Request) {
			r.URL.RawQuery = "token=" + valid + "&access_token=" + valid + "&__session=" + valid
		}, want: auth.ReasonMissing},
		{name: "token in cookie ignored", prepare: func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "__session", Value: valid})
			r.AddCookie(&http.Cookie{Name: "access_token", Value: valid})
		}, want: auth.ReasonMissing},

		// Shape.
		{name: "two authorization headers", prepare: func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+valid)
			r.Header.Add("Authorization", "Bearer "+valid)
		}, want: auth.ReasonMalformed},
		{name: "oversized token", prepare: bearer(valid + "." + strings.Repeat("A", auth.MaxTokenBytes)), want: auth.ReasonOversized},
		{name: "one byte over the limit", prepare: bearer(strings.Repeat("A", auth.MaxTokenBytes+1)), want: auth.ReasonOversized},
		{name: "at the limit, not a token", prepare: bearer(strings.Repeat("A", auth.MaxTokenBytes)), want: auth.ReasonMalformed},
		{name: "oversized header", prepare: bearer(strings.Repeat("A", 64<<10)), want: auth.ReasonOversized},
		{name: "one segment", prepare: bearer("abc"), want: auth.ReasonMalformed},
		{name: "two segments", prepare: bearer(validParts[0] + "." + validParts[1]), want: auth.ReasonMalformed},
		{name: "four segments", prepare: bearer(valid + ".AAAA"), want: auth.ReasonMalformed},
		{name: "empty header segment", prepare: bearer("." + validParts[1] + "." + validParts[2]), want: auth.ReasonMalformed},
		{name: "padding in segment", prepare: bearer(validParts[0] + "=." + validParts[1] + "." + validParts[2]), want: auth.ReasonMalformed},
		{name: "standard base64 chars", prepare: bearer(validParts[0] + "." + validParts[1] + "+/." + validParts[2]), want: auth.ReasonMalformed},
		{name: "space inside token", prepare: bearer(validParts[0] + ". " + validParts[1] + "." + validParts[2]), want: auth.ReasonMalformed},
		{name: "header not json", prepare: bearer(b64([]byte("not json")) + "." + validParts[1] + "." + validParts[2]), want: auth.ReasonMalformed},
		{name: "json serialization", prepare: bearer(`{"payload":"` + validParts[1] + `","signatures":[]}`), want: auth.ReasonMalformed},

		// Algorithms.
		{name: "alg none", prepare: bearer(sign(t, claims(now), jwa.NoSignature, nil, map[string]any{"kid": kid})), want: auth.ReasonAlgorithm},
		{name: "alg none with valid signature kept", prepare: bearer(b64([]byte(`{"alg":"none","kid":"`+kid+`"}`)) + "." + validParts[1] + "." + validParts[2]), want: auth.ReasonAlgorithm},
		{name: "HS256 keyed with the public PEM", prepare: bearer(sign(t, claims(now), jwa.HS256, []byte(pubPEM), map[string]any{"kid": kid})), want: auth.ReasonAlgorithm},
		{name: "HS256 keyed with the public DER", prepare: bearer(sign(t, claims(now), jwa.HS256, pubDER, map[string]any{"kid": kid})), want: auth.ReasonAlgorithm},
		{name: "RS512 by the real key", prepare: bearer(s.mint(t, fakeclerk.Token{Algorithm: jwa.RS512})), want: auth.ReasonAlgorithm},
		{name: "PS256 by the real key", prepare: bearer(s.mint(t, fakeclerk.Token{Algorithm: jwa.PS256})), want: auth.ReasonAlgorithm},
		{name: "ES256", prepare: bearer(sign(t, claims(now), jwa.ES256, attackerEC, map[string]any{"kid": kid})), want: auth.ReasonAlgorithm},
		{name: "lowercase rs256", prepare: bearer(b64([]byte(`{"alg":"rs256","kid":"`+kid+`"}`)) + "." + validParts[1] + "." + validParts[2]), want: auth.ReasonAlgorithm},

		// Keys.
		{name: "unknown kid", prepare: bearer(sign(t, claims(now), jwa.RS256, attackerRSA, map[string]any{"kid": "attacker"})), want: auth.ReasonUnknownKey},
		{name: "no kid", prepare: bearer(sign(t, claims(now), jwa.RS256, attackerRSA, nil)), want: auth.ReasonUnknownKey},
		{name: "real kid, attacker key", prepare: bearer(sign(t, claims(now), jwa.RS256, attackerRSA, map[string]any{"kid": kid})), want: auth.ReasonSignature},
		{name: "embedded jwk, attacker kid", prepare: bearer(sign(t, claims(now), jwa.RS256, attackerRSA, map[string]any{"kid": "attacker", "jwk": attackerJWK})), want: auth.ReasonUnknownKey},
		{name: "embedded jwk, real kid", prepare: bearer(sign(t, claims(now), jwa.RS256, attackerRSA, map[string]any{"kid": kid, "jwk": attackerJWKWithClerkKID})), want: auth.ReasonSignature},
		{name: "jku to attacker jwks", prepare: bearer(sign(t, claims(now), jwa.RS256, attackerRSA, map[string]any{"kid": "attacker", "jku": attackerSrv.URL})), want: auth.ReasonUnknownKey},
		{name: "x5u to attacker", prepare: bearer(sign(t, claims(now), jwa.RS256, attackerRSA, map[string]any{"kid": kid, "x5u": attackerSrv.URL})), want: auth.ReasonSignature},
		{name: "x5c attacker certificate", prepare: bearer(sign(t, claims(now), jwa.RS256, attackerRSA, map[string]any{"kid": kid, "x5c": &chain})), want: auth.ReasonSignature},
		{name: "tampered payload", prepare: bearer(validParts[0] + "." + b64([]byte(`{"iss":"`+issuer+`","sub":"user_admin","exp":`+itoa(now.Add(time.Hour).Unix())+`}`)) + "." + validParts[2]), want: auth.ReasonSignature},
		{name: "signature of another token", prepare: bearer(validParts[0] + "." + validParts[1] + "." + strings.Split(s.mint(t, fakeclerk.Token{Subject: "user_other"}), ".")[2]), want: auth.ReasonSignature},
		{name: "empty signature", prepare: bearer(validParts[0] + "." + validParts[1] + "."), want: auth.ReasonSignature},

		// Headers that ask for processing nobody here does, signed by Clerk's key.
		{name: "crit naming a claim", prepare: bearer(s.mint(t, fakeclerk.Token{Headers: map[string]any{"crit": []string{"exp"}, "exp": 1}})), want: auth.ReasonMalformed},
		{name: "crit empty", prepare: bearer(s.mint(t, fakeclerk.Token{Headers: map[string]any{"crit": []string{}}})), want: auth.ReasonMalformed},
		{name: "b64 false, Clerk's payload and signature kept", prepare: bearer(b64([]byte(`{"alg":"RS256","kid":"`+kid+`","b64":false,"crit":["b64"]}`)) + "." + validParts[1] + "." + validParts[2]), want: auth.ReasonMalformed},
		{name: "b64 true", prepare: bearer(s.mint(t, fakeclerk.Token{Headers: map[string]any{"b64": true}})), want: auth.ReasonMalformed},

		// Clerk's header, remembered since the first valid row: what is
		// checked without decoding it again.
		{name: "remembered header, signature bit flipped", prepare: bearer(validParts[0] + "." + validParts[1] + "." + flipSignatureBit(t, validParts[2])), want: auth.ReasonSignature},
		{name: "remembered header, another payload and its own signature of another token", prepare: bearer(validParts[0] + "." + strings.Split(s.mint(t, fakeclerk.Token{Subject: "user_admin"}), ".")[1] + "." + validParts[2]), want: auth.ReasonSignature},
		{name: "remembered header, payload not base64", prepare: bearer(validParts[0] + ".A." + validParts[2]), want: auth.ReasonMalformed},
		{name: "remembered header, payload not json", prepare: bearer(validParts[0] + "." + b64([]byte("not json")) + "." + validParts[2]), want: auth.ReasonSignature},
		{name: "signature spelled another way", prepare: bearer(validParts[0] + "." + validParts[1] + "." + respell(t, validParts[2])), want: auth.ReasonMalformed},
		{name: "header re-ordered, Clerk's signature kept", prepare: bearer(b64([]byte(`{"typ":"JWT","kid":"`+kid+`","alg":"RS256"}`)) + "." + validParts[1] + "." + validParts[2]), want: auth.ReasonSignature},
		{name: "header with spaces, Clerk's signature kept", prepare: bearer(b64([]byte(`{"alg": "RS256", "kid": "`+kid+`", "typ": "JWT"}`)) + "." + validParts[1] + "." + validParts[2]), want: auth.ReasonSignature},
		{name: "header with a duplicate alg, Clerk's signature kept", prepare: bearer(b64([]byte(`{"alg":"RS256","kid":"`+kid+`","typ":"JWT","alg":"none"}`)) + "." + validParts[1] + "." + validParts[2]), want: auth.ReasonAlgorithm},

		// Time.
		{name: "expired", prepare: bearer(s.mint(t, fakeclerk.Token{IssuedAt: now.Add(-2 * time.Minute)})), want: auth.ReasonExpired},
		{name: "expired just beyond skew", prepare: bearer(s.mint(t, fakeclerk.Token{IssuedAt: now.Add(-67 * time.Second)})), want: auth.ReasonExpired},
		{name: "nbf beyond skew", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"nbf": now.Add(30 * time.Second).Unix()}})), want: auth.ReasonNotYetValid},
		{name: "iat beyond skew", prepare: bearer(s.mint(t, fakeclerk.Token{IssuedAt: now.Add(30 * time.Second), Claims: map[string]any{"nbf": now.Unix()}})), want: auth.ReasonNotYetValid},
		{name: "no exp", prepare: bearer(s.mint(t, fakeclerk.Token{Omit: []string{"exp"}})), want: auth.ReasonClaims},
		{name: "exp zero", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"exp": 0}})), want: auth.ReasonClaims},
		{name: "exp as string", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"exp": "tomorrow"}})), want: auth.ReasonMalformed},
		{name: "exp as NaN string", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"exp": "NaN"}})), want: auth.ReasonMalformed},
		{name: "exp as hex string", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"exp": "0x7fffffff"}})), want: auth.ReasonMalformed},
		{name: "exp as object", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"exp": map[string]any{"at": 1}}})), want: auth.ReasonMalformed},
		{name: "exp passed, as a numeric string", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"exp": itoa(now.Add(-time.Minute).Unix())}})), want: auth.ReasonExpired},
		{name: "exp passed, with a fraction", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"exp": float64(now.Unix()-5) + 0.9}})), want: auth.ReasonExpired},
		{name: "sub a number", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"sub": 42}})), want: auth.ReasonMalformed},

		// Issuer.
		{name: "wrong issuer", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"iss": "https://evil.example"}})), want: auth.ReasonIssuer},
		{name: "issuer prefix trick", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"iss": issuer + ".evil.example"}})), want: auth.ReasonIssuer},
		{name: "issuer suffix trick", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"iss": "https://evil.example/" + issuer}})), want: auth.ReasonIssuer},
		{name: "issuer trailing slash", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"iss": issuer + "/"}})), want: auth.ReasonIssuer},
		{name: "issuer other case", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"iss": strings.ToUpper(issuer)}})), want: auth.ReasonIssuer},
		{name: "issuer http", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"iss": strings.Replace(issuer, "https", "http", 1)}})), want: auth.ReasonIssuer},
		{name: "no issuer", prepare: bearer(s.mint(t, fakeclerk.Token{Omit: []string{"iss"}})), want: auth.ReasonIssuer},
		{name: "issuer as array", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"iss": []string{issuer}}})), want: auth.ReasonMalformed},

		// Authorized party.
		{name: "unlisted azp", prepare: bearer(s.mint(t, fakeclerk.Token{AuthorizedParty: "https://evil.example"})), want: auth.ReasonAZP},
		{name: "azp prefix trick", prepare: bearer(s.mint(t, fakeclerk.Token{AuthorizedParty: frontend + ".evil.example"})), want: auth.ReasonAZP},
		{name: "empty azp", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"azp": ""}})), want: auth.ReasonAZP},
		{name: "azp as array", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"azp": []string{frontend}}})), want: auth.ReasonAZP},

		// Subject and session.
		{name: "missing sub", prepare: bearer(s.mint(t, fakeclerk.Token{Omit: []string{"sub"}})), want: auth.ReasonSubject},
		{name: "empty sub", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"sub": ""}})), want: auth.ReasonSubject},
		{name: "blank sub", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"sub": "  "}})), want: auth.ReasonSubject},
		{name: "sts pending", prepare: bearer(s.mint(t, fakeclerk.Token{Status: "pending"})), want: auth.ReasonPending},
		{name: "sts not a string", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"sts": 1}})), want: auth.ReasonClaims},
		{name: "sid not a string", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"sid": 5}})), want: auth.ReasonClaims},
		{name: "o not an object", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"o": "org_1"}})), want: auth.ReasonClaims},
		{name: "o without id", prepare: bearer(s.mint(t, fakeclerk.Token{Claims: map[string]any{"o": map[string]any{"rol": "admin"}}})), want: auth.ReasonClaims},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before float64
			if tc.want != ok {
				before = counter(t, s.reg, "payments_api_auth_failures_total", "reason", string(tc.want))
			}
			res := do(t, s.v, tc.prepare)

			if tc.want == ok {
				if got, want := res.status, http.StatusOK; got != want {
					t.Fatalf("status = %d, want %d (%s)", got, want, res.body)
				}
				if got, want := res.identity, tc.wantID; got != want {
					t.Errorf("identity = %+v, want %+v", got, want)
				}
				if got, want := attr(res.logAttrs, "user_id"), tc.wantID.UserID; got != want {
					t.Errorf("log user_id = %q, want %q", got, want)
				}
				return
			}

			if res.reached {
				t.Fatal("handler reached")
			}
			if got, want := res.status, http.StatusUnauthorized; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			wantChallenge := `Bearer error="invalid_token"`
			if tc.want == auth.ReasonMissing {
				wantChallenge = "Bearer"
			}
			if got := res.header.Get("WWW-Authenticate"); got != wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, wantChallenge)
			}
			if got, want := res.problem.RequestID, "req-1"; got != want {
				t.Errorf("problem request_id = %q, want %q", got, want)
			}
			if got := attr(res.logAttrs, "user_id"); got != "" {
				t.Errorf("log user_id = %q on a refusal", got)
			}
			// The reason goes to the metric and the log line, never the client.
			if got, want := attr(res.logAttrs, "error"), "auth: token refused: "+string(tc.want); !strings.Contains(got, want) {
				t.Errorf("log error = %q, want it to contain %q", got, want)
			}
			wantDetail := "The bearer token is invalid or has expired."
			if tc.want == auth.ReasonMissing {
				wantDetail = "A bearer token is required."
			}
			if got := res.problem.Detail; got != wantDetail {
				t.Errorf("detail = %q, want %q", got, wantDetail)
			}
			if got := counter(t, s.reg, "payments_api_auth_failures_total", "reason", string(tc.want)) - before; got != 1 {
				t.Errorf("auth_failures_total{reason=%q} grew by %v, want 1", tc.want, got)
			}
		})
	}

	if got := attackerHits.Load(); got != 0 {
		t.Errorf("attacker's jku/x5u server was asked %d times, want 0", got)
	}
	// Nothing about a token reaches the logs or a body.
	for _, secret := range []string{validParts[1], validParts[2], "u@example.com"} {
		if strings.Contains(s.logs.String(), secret) {
			t.Errorf("verifier log contains token material %q", secret[:8])
		}
	}
}

// flipSignatureBit returns the base64url segment sig with one bit of the
// bytes it encodes flipped.
func flipSignatureBit(t *testing.T, sig string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	return base64.RawURLEncoding.EncodeToString(raw)
}

// respell returns seg (base64url, no padding) spelled another way that
// lenient decoders read as the same bytes: a bit that encodes nothing set in
// its last character.
func respell(t *testing.T, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 < 2 {
		t.Fatalf("a segment of %d characters has no spare bits", len(seg))
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	other := seg[:len(seg)-1] + string(alphabet[last|1])
	if a, b := decodeLenient(t, seg), decodeLenient(t, other); !bytes.Equal(a, b) {
		t.Fatal("respell changed the bytes")
	}
	return other
}

func decodeLenient(t *testing.T, seg string) []byte {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func attr(attrs []slogAttr, key string) string {
	for _, a := range attrs {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

// TestNoAuthorizedParties: with no authorized party configured, a token that
// names one is refused and a token that names none is accepted.
func TestNoAuthorizedParties(t *testing.T) {
	c, err := fakeclerk.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(t.Context(), auth.Options{Issuer: issuer, Key: c.PublicKey(), AuthorizedParties: origin.Set{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		azp  string
		want auth.Reason
	}{{"", ""}, {frontend, auth.ReasonAZP}} {
		token, err := c.Mint(fakeclerk.Token{AuthorizedParty: tc.azp})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(t.Context(), token)
		var ae *auth.Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("azp %q: %v, want accepted", tc.azp, err)
		case tc.want != "" && (!errors.As(err, &ae) || ae.Reason != tc.want):
			t.Errorf("azp %q: %v, want reason %q", tc.azp, err, tc.want)
		}
	}
}

// TestClockSkewIsTheConfiguredOne: the leeway is exactly Options.ClockSkew, and
// zero (CLERK_CLOCK_SKEW=0s) allows none rather than falling back to a default.
func TestClockSkewIsTheConfiguredOne(t *testing.T) {
	c, err := fakeclerk.New(issuer)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	// Expired 2 s ago, and issued and valid from 2 s in the future.
	expired, err := c.Mint(fakeclerk.Token{IssuedAt: now.Add(-fakeclerk.DefaultTTL - 2*time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	early, err := c.Mint(fakeclerk.Token{IssuedAt: now.Add(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		skew                 time.Duration
		wantExpired, wantNbf auth.Reason // "" when accepted
	}{
		{0, auth.ReasonExpired, auth.ReasonNotYetValid},
		{time.Second, auth.ReasonExpired, auth.ReasonNotYetValid},
		{3 * time.Second, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.skew.String(), func(t *testing.T) {
			v, err := auth.NewVerifier(t.Context(), auth.Options{
				Issuer: issuer, Key: c.PublicKey(), ClockSkew: tt.skew,
				Now: func() time.Time { return now },
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name, token string
				want        auth.Reason
			}{{"expired 2 s ago", expired, tt.wantExpired}, {"valid in 2 s", early, tt.wantNbf}} {
				_, err := v.Verify(t.Context(), tc.token)
				var ae *auth.Error
				switch {
				case tc.want == "" && err != nil:
					t.Errorf("%s: %v, want accepted", tc.name, err)
				case tc.want != "" && (!errors.As(err, &ae) || ae.Reason != tc.want):
					t.Errorf("%s: %v, want reason %q", tc.name, err, tc.want)
				}
			}
		})
	}
}
