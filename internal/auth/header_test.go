package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

const testIssuer = "https://clerk.payments.example"

// headerStand is a verifier with one RS256 key under kid "ins_test", and a way
// to sign any header and payload bytes with that key, so that tests can make
// headers that differ from Clerk's only in spelling.
type headerStand struct {
	v    *Verifier
	priv *rsa.PrivateKey
	now  time.Time
}

func newHeaderStand(tb testing.TB) *headerStand {
	tb.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	v, err := NewVerifier(context.Background(), Options{
		Issuer: testIssuer, Key: &priv.PublicKey, ClockSkew: 5 * time.Second,
		Now: func() time.Time { return now },
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &headerStand{v: v, priv: priv, now: now}
}

// keys returns a fresh key set, as a JWKS fetch makes it: nothing remembered.
func (s *headerStand) keys() *keySet {
	return &keySet{byKID: map[string]*rsa.PublicKey{"ins_test": &s.priv.PublicKey}}
}

// clerkHeader is the protected header as Clerk's tokens carry it.
const clerkHeader = `{"alg":"RS256","kid":"ins_test","typ":"JWT"}`

// claims are valid claims for sub, with pad appended to a claim nobody reads
// (so that a test can choose the segment's length).
func (s *headerStand) claims(sub, pad string) string {
	return fmt.Sprintf(`{"iss":%q,"sub":%q,"sid":"sess_1","iat":%d,"nbf":%d,"exp":%d,"pad":%q}`,
		testIssuer, sub, s.now.Unix(), s.now.Unix(), s.now.Add(time.Minute).Unix(), pad)
}

// sign returns header.payload.signature, both given as JSON text, signed with
// the stand's key over the segments exactly as written.
func (s *headerStand) sign(tb testing.TB, header, payload string) string {
	tb.Helper()
	input := b64url(header) + "." + b64url(payload)
	signer, err := jws.NewSigner(jwa.RS256)
	if err != nil {
		tb.Fatal(err)
	}
	sig, err := signer.Sign([]byte(input), s.priv)
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// decide is Verify's decision for token with ks, without the refresh.
func (s *headerStand) decide(ks *keySet, token string) (Identity, Reason) {
	if len(token) > MaxTokenBytes || !isCompactJWS(token) {
		return Identity{}, ReasonMalformed
	}
	id, e := s.v.verifyWith(ks, token)
	if e != nil {
		return Identity{}, e.Reason
	}
	return id, ""
}

// warm returns a key set that has verified a genuine token with Clerk's
// header, and that header.
func (s *headerStand) warm(tb testing.TB) (*keySet, string) {
	tb.Helper()
	ks := s.keys()
	token := s.sign(tb, clerkHeader, s.claims("user_warm", ""))
	if _, reason := s.decide(ks, token); reason != "" {
		tb.Fatalf("genuine token refused: %s", reason)
	}
	header, _, _ := strings.Cut(token, ".")
	if ks.headers.key(header) == nil {
		tb.Fatal("Clerk's header was not remembered")
	}
	return ks, header
}

// TestRememberedHeaderDecidesAlike: a token whose header is remembered gets
// exactly the decision jws.Verify gives it on a key set that remembers nothing,
// whatever was done to its payload or signature.
func TestRememberedHeaderDecidesAlike(t *testing.T) {
	s := newHeaderStand(t)
	ks, header := s.warm(t)
	genuine := s.sign(t, clerkHeader, s.claims("user_1", ""))
	parts := strings.Split(genuine, ".")
	other := strings.Split(s.sign(t, clerkHeader, s.claims("user_admin", "")), ".")
	// A payload whose length leaves spare bits in its last character.
	padded := s.sign(t, clerkHeader, s.claims("user_2", padFor(s.claims("user_2", ""), 2)))
	paddedParts := strings.Split(padded, ".")
	expired := s.sign(t, clerkHeader, strings.Replace(s.claims("user_3", ""),
		strconv.FormatInt(s.now.Add(time.Minute).Unix(), 10), strconv.FormatInt(s.now.Add(-time.Minute).Unix(), 10), 1))
	flipped, _ := base64.RawURLEncoding.DecodeString(parts[2])
	flipped[0] ^= 0x80

	tests := []struct {
		name, token string
		want        Reason
	}{
		{"genuine", genuine, ""},
		{"genuine, payload length 4k+2", padded, ""},
		{"payload of another token", header + "." + other[1] + "." + parts[2], ReasonSignature},
		{"signature of another token", header + "." + parts[1] + "." + other[2], ReasonSignature},
		{"signature bit flipped", header + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(flipped), ReasonSignature},
		{"signature empty", header + "." + parts[1] + ".", ReasonSignature},
		{"signature truncated", header + "." + parts[1] + "." + parts[2][:len(parts[2])/4*4], ReasonSignature},
		{"signature 4k+1 characters", header + "." + parts[1] + "." + parts[2][:len(parts[2])-1], ReasonMalformed},
		{"payload 4k+1 characters", header + ".AAAAA." + parts[2], ReasonMalformed},
		{"payload spelled another way", header + "." + respelled(paddedParts[1]) + "." + paddedParts[2], ReasonMalformed},
		{"payload not json, signed", s.sign(t, clerkHeader, "not json"), ReasonMalformed},
		{"claims expired, signed", expired, ReasonExpired},
		{"claims of the wrong type, signed", s.sign(t, clerkHeader, `{"iss":["`+testIssuer+`"]}`), ReasonMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.HasPrefix(tc.token, header+".") {
				t.Fatal("the case does not carry the remembered header")
			}
			coldID, cold := s.decide(s.keys(), tc.token)
			warmID, warm := s.decide(ks, tc.token)
			if cold != tc.want {
				t.Errorf("jws.Verify's decision = %q, want %q", cold, tc.want)
			}
			if warm != cold || warmID != coldID {
				t.Errorf("remembered header: %q %+v, jws.Verify: %q %+v", warm, warmID, cold, coldID)
			}
		})
	}
}

// TestWhichHeadersAreRemembered: only a header that verified, that says no
// more than "RS256 with this key", is remembered; re-spelling Clerk's header
// makes another header, which must verify on its own.
func TestWhichHeadersAreRemembered(t *testing.T) {
	s := newHeaderStand(t)
	claims := s.claims("user_1", "")
	tests := []struct {
		name, header string
		wantReason   Reason
		remembered   bool
	}{
		{"Clerk's", clerkHeader, "", true},
		{"keys in another order", `{"typ":"JWT","kid":"ins_test","alg":"RS256"}`, "", true},
		{"with spaces", `{"alg": "RS256", "kid": "ins_test", "typ": "JWT"}`, "", true},
		{"a member of Clerk's own", `{"alg":"RS256","cat":"cl_B7d4PD111AAA","kid":"ins_test","typ":"JWT"}`, "", true},
		{"with jku", `{"alg":"RS256","jku":"https://attacker.example/jwks","kid":"ins_test"}`, "", false},
		{"with x5u", `{"alg":"RS256","kid":"ins_test","x5u":"https://attacker.example/cert"}`, "", false},
		{"with jwk", `{"alg":"RS256","jwk":{"kty":"RSA","e":"AQAB","n":"` + base64.RawURLEncoding.EncodeToString(s.priv.N.Bytes()) + `"},"kid":"ins_test"}`, "", false},
		{"with x5c", `{"alg":"RS256","kid":"ins_test","x5c":["AAAA"]}`, "", false},
		{"with x5t", `{"alg":"RS256","kid":"ins_test","x5t":"AAAA"}`, "", false},
		{"with x5t#S256", `{"alg":"RS256","kid":"ins_test","x5t#S256":"AAAA"}`, "", false},
		{"with crit", `{"alg":"RS256","crit":["exp"],"kid":"ins_test"}`, ReasonMalformed, false},
		{"with b64 true", `{"alg":"RS256","b64":true,"kid":"ins_test"}`, ReasonMalformed, false},
		{"unknown kid", `{"alg":"RS256","kid":"ins_other"}`, ReasonUnknownKey, false},
		{"alg none", `{"alg":"none","kid":"ins_test"}`, ReasonAlgorithm, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks := s.keys()
			token := s.sign(t, tc.header, claims)
			for round := range 2 { // the second round takes the remembered way, if any
				id, reason := s.decide(ks, token)
				if reason != tc.wantReason || (reason == "" && id.UserID != "user_1") {
					t.Fatalf("round %d: reason %q, user %q; want reason %q", round, reason, id.UserID, tc.wantReason)
				}
			}
			if got := ks.headers.key(b64url(tc.header)) != nil; got != tc.remembered {
				t.Errorf("remembered = %v, want %v", got, tc.remembered)
			}
		})
	}

	t.Run("not when the signature fails", func(t *testing.T) {
		ks := s.keys()
		parts := strings.Split(s.sign(t, clerkHeader, claims), ".")
		forged := parts[0] + "." + b64url(s.claims("user_admin", "")) + "." + parts[2]
		if _, reason := s.decide(ks, forged); reason != ReasonSignature {
			t.Fatalf("reason = %q, want %q", reason, ReasonSignature)
		}
		if ks.headers.key(parts[0]) != nil {
			t.Error("a header was remembered from a token whose signature failed")
		}
	})
}

// TestKnownHeadersBound: the memory holds at most maxKnownHeaders headers and
// starts again from the newest when full.
func TestKnownHeadersBound(t *testing.T) {
	var k knownHeaders
	key := &rsa.PublicKey{}
	for i := range maxKnownHeaders {
		k.remember("h"+strconv.Itoa(i), key)
	}
	if got, want := len(*k.byHeader.Load()), maxKnownHeaders; got != want {
		t.Fatalf("len = %d, want %d", got, want)
	}
	k.remember("h0", key) // already there: nothing changes
	if got, want := len(*k.byHeader.Load()), maxKnownHeaders; got != want {
		t.Fatalf("len after a known one = %d, want %d", got, want)
	}
	k.remember("newest", key)
	if got, want := len(*k.byHeader.Load()), 1; got != want {
		t.Fatalf("len after one more = %d, want %d", got, want)
	}
	if k.key("newest") != key || k.key("h0") != nil {
		t.Error("after the restart, want only the newest header")
	}
}

// FuzzRememberedHeader holds the remembered way to jws.Verify's: for any token,
// the same decision and identity from a key set that remembers Clerk's header
// as from one that remembers nothing.
func FuzzRememberedHeader(f *testing.F) {
	s := newHeaderStand(f)
	ks, header := s.warm(f)
	genuine := s.sign(f, clerkHeader, s.claims("user_1", ""))
	parts := strings.Split(genuine, ".")
	for _, seed := range []string{
		genuine,
		s.sign(f, clerkHeader, s.claims("user_2", padFor(s.claims("user_2", ""), 3))),
		header + "." + parts[1] + ".",
		header + "." + b64url(s.claims("user_admin", "")) + "." + parts[2],
		s.sign(f, clerkHeader, `{"iss":1}`),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		coldID, cold := s.decide(s.keys(), token)
		warmID, warm := s.decide(ks, token)
		if warm != cold || warmID != coldID {
			t.Fatalf("remembered header: %q %+v, jws.Verify: %q %+v", warm, warmID, cold, coldID)
		}
	})
}

// padFor returns the padding that makes the base64url form of claims (with
// the padding in its pad claim) rem characters over a multiple of 4.
func padFor(claims string, rem int) string {
	for pad := ""; ; pad += "x" {
		if len(b64url(strings.Replace(claims, `"pad":""`, `"pad":"`+pad+`"`, 1)))%4 == rem {
			return pad
		}
	}
}

// respelled returns seg with a bit that encodes nothing set in its last
// character: the same bytes to a lenient decoder.
func respelled(seg string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return seg[:len(seg)-1] + string(alphabet[strings.IndexByte(alphabet, seg[len(seg)-1])|1])
}
