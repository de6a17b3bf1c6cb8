package auth

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

var (
	errAlgorithm  = errors.New("alg is not RS256")
	errHeader     = errors.New("header asks for crit or b64 processing")
	errUnknownKey = errors.New("kid not in key set")
)

// keyProvider hands jws the one key a token may be checked with: the RS256 key
// named by its kid. The header's jwk, jku, x5u and x5c are never looked at. It
// notes the key it handed out, and whether the header may be remembered with
// it once the signature verifies.
type keyProvider struct {
	ks           *keySet
	key          *rsa.PublicKey
	rememberable bool
}

func (p *keyProvider) FetchKeys(_ context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	if h.Algorithm() != jwa.RS256 {
		return errAlgorithm
	}
	if unsupported(h) {
		return errHeader
	}
	key, ok := p.ks.lookup(h.KeyID())
	if !ok {
		return errUnknownKey
	}
	p.key, p.rememberable = key, rememberable(h)
	sink.Key(jwa.RS256, key)
	return nil
}

// verifyWith checks token with the keys of ks and returns the identity its
// claims give. The JOSE layer (the compact form, the header, the algorithm,
// the signature) is checked by jwx: by jws.Verify the first time a header is
// seen, by jwx's RS256 verifier alone for a header jws.Verify has already
// accepted (see knownHeaders). The claims of the verified payload are then
// decoded once, into a struct of the claims that matter, and checked here.
//
// jwt.Parse did the same checks but decoded the claims through
// encoding/json's token stream into maps, which cost about as much as the RSA
// verification itself; the checks below follow jwx's to the second (see
// checkTimes), and the attack table in verify_test.go holds them to it.
func (v *Verifier) verifyWith(ks *keySet, token string) (Identity, *Error) {
	header, _, _ := strings.Cut(token, ".")
	var payload []byte
	var e *Error
	if key := ks.headers.key(header); key != nil {
		payload, e = v.verifySignature(key, token, len(header))
	} else {
		payload, e = verifyJWS(ks, token, header)
	}
	if e != nil {
		return Identity{}, e
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Identity{}, refuse(ReasonMalformed, err)
	}
	if e := v.checkClaims(&c); e != nil {
		return Identity{}, e
	}
	return v.identity(&c)
}

// verifyJWS checks token with jws.Verify and returns its payload. A header it
// accepts is remembered, when it may be, with the key that verified it.
func verifyJWS(ks *keySet, token, header string) ([]byte, *Error) {
	p := &keyProvider{ks: ks}
	payload, err := jws.Verify([]byte(token), jws.WithKeyProvider(p))
	if err != nil {
		return nil, refuse(classify(err), err)
	}
	if p.rememberable {
		ks.headers.remember(header, p.key)
	}
	return payload, nil
}

// verifySignature checks a token whose header segment jws.Verify accepted
// with key, and returns its payload. It decodes what jws.Verify would
// (payload, then signature: undecodable is malformed) and has jwx's RS256
// verifier check the signature over the signing input as sent. isCompactJWS
// has already refused a segment that is not canonical base64url, so the
// text sent is the text jws.Verify would have signed.
func (v *Verifier) verifySignature(key *rsa.PublicKey, token string, headerLen int) ([]byte, *Error) {
	dot := strings.LastIndexByte(token, '.')
	payload, err := base64.RawURLEncoding.DecodeString(token[headerLen+1 : dot])
	if err != nil {
		return nil, refuse(ReasonMalformed, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		return nil, refuse(ReasonMalformed, err)
	}
	if err := v.rs256.Verify([]byte(token[:dot]), sig, key); err != nil {
		return nil, refuse(ReasonSignature, err)
	}
	return payload, nil
}

func classify(err error) Reason {
	switch {
	case errors.Is(err, errAlgorithm):
		return ReasonAlgorithm
	case errors.Is(err, errHeader):
		return ReasonMalformed
	case errors.Is(err, errUnknownKey):
		return ReasonUnknownKey
	case jws.IsVerificationError(err):
		return ReasonSignature
	default:
		return ReasonMalformed
	}
}

// claims are the claims of a Clerk session token that are checked or read.
// The registered ones have their RFC 7519 types, so that a token whose iss is
// an array or whose exp is a word is malformed; Clerk's own are kept raw and
// checked one by one, each refusal with its own reason.
type claims struct {
	Issuer    *string     `json:"iss"`
	Subject   string      `json:"sub"`
	Expiry    numericDate `json:"exp"`
	NotBefore numericDate `json:"nbf"`
	IssuedAt  numericDate `json:"iat"`

	AuthorizedParty json.RawMessage `json:"azp"`
	Status          json.RawMessage `json:"sts"`
	SessionID       json.RawMessage `json:"sid"`
	Email           json.RawMessage `json:"email"`
	Org             json.RawMessage `json:"o"`
	OrgID           json.RawMessage `json:"org_id"`
}

// numericDate is an RFC 7519 NumericDate: seconds since the epoch, a JSON
// number or a string holding one, as jwx accepts it. Zero is absent.
type numericDate struct{ unix int64 }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		// A string must hold a JSON number; json.Number checks that.
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		b = []byte(n)
	}
	// A JSON number, which strconv reads; true, false, objects and arrays
	// fail here.
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(f, 0) {
		return fmt.Errorf("not a NumericDate: %q", b)
	}
	d.unix = int64(f) // whole seconds, as jwx truncates them
	return nil
}

// checkClaims checks the times and the issuer, in jwx's order: iat, exp, nbf,
// iss, then exp required.
func (v *Verifier) checkClaims(c *claims) *Error {
	if e := v.checkTimes(c); e != nil {
		return e
	}
	if c.Issuer == nil || *c.Issuer != v.issuer {
		return refuse(ReasonIssuer, nil)
	}
	// A token must really expire: jwx took exp = 0 for absent, and so do we.
	if c.Expiry.unix == 0 {
		return refuse(ReasonClaims, errors.New("exp is missing or zero"))
	}
	return nil
}

// checkTimes applies the skew as jwx does, to the second: expired once now
// is not before exp + skew; not yet valid while now is before nbf - skew or
// before iat - skew. An absent (or zero) time is not checked.
func (v *Verifier) checkTimes(c *claims) *Error {
	now := v.now().Unix()
	skew := int64(v.skew / time.Second)
	switch {
	case c.IssuedAt.unix != 0 && now < c.IssuedAt.unix-skew:
		return refuse(ReasonNotYetValid, errors.New("iat is in the future"))
	case c.Expiry.unix != 0 && now >= c.Expiry.unix+skew:
		return refuse(ReasonExpired, nil)
	case c.NotBefore.unix != 0 && now < c.NotBefore.unix-skew:
		return refuse(ReasonNotYetValid, errors.New("nbf is in the future"))
	}
	return nil
}

// identity applies the checks of Clerk's own claims and reads them.
func (v *Verifier) identity(c *claims) (Identity, *Error) {
	if strings.TrimSpace(c.Subject) == "" {
		return Identity{}, refuse(ReasonSubject, nil)
	}
	if c.AuthorizedParty != nil {
		azp, isString := rawString(c.AuthorizedParty)
		if _, listed := v.parties[azp]; !isString || !listed {
			return Identity{}, refuse(ReasonAZP, nil)
		}
	}
	if c.Status != nil {
		sts, isString := rawString(c.Status)
		if !isString {
			return Identity{}, refuse(ReasonClaims, errors.New("sts is not a string"))
		}
		if sts == "pending" {
			return Identity{}, refuse(ReasonPending, nil)
		}
	}

	id := Identity{UserID: c.Subject}
	if c.SessionID != nil {
		sid, isString := rawString(c.SessionID)
		if !isString {
			return Identity{}, refuse(ReasonClaims, errors.New("sid is not a string"))
		}
		id.SessionID = sid
	}
	// A session token template renders a missing address as null: no email.
	id.Email, _ = rawString(c.Email)
	org, err := orgID(c)
	if err != nil {
		return Identity{}, refuse(ReasonClaims, err)
	}
	id.OrgID = org
	return id, nil
}

// rawString decodes a raw claim as a string; false when it is absent or
// anything else (null included).
func rawString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// orgID reads the active organisation: Clerk v2's o.id, or v1's org_id.
func orgID(c *claims) (string, error) {
	if c.Org != nil && string(c.Org) != "null" {
		var o map[string]json.RawMessage
		if json.Unmarshal(c.Org, &o) != nil || o == nil {
			return "", errors.New("o is not an object")
		}
		id, isString := rawString(o["id"])
		if !isString || id == "" {
			return "", errors.New("o.id is missing")
		}
		return id, nil
	}
	if c.OrgID != nil && string(c.OrgID) != "null" {
		id, isString := rawString(c.OrgID)
		if !isString {
			return "", errors.New("org_id is not a string")
		}
		return id, nil
	}
	return "", nil
}
