package auth

import (
	"crypto/rsa"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lestrrat-go/jwx/v2/jws"
)

// maxKnownHeaders bounds the headers one key set remembers. Clerk signs every
// token of a key with the same protected header, so one or two are in use at a
// time; when a ninth verifies, the memory starts again from it.
const maxKnownHeaders = 8

// knownHeaders remembers protected header segments, byte for byte as sent,
// that jws.Verify has accepted, each with the key that verified its token.
//
// It is why a Clerk token costs little more than its RSA check. Every token
// of one Clerk key starts with the same header segment, and jws.Verify spends
// about a third of an RSA verification decoding it (encoding/json's token
// stream into a header map) and re-encoding the signing input. A token whose
// header segment is remembered skips that: the key is taken from here and
// jwx's RS256 verifier checks the signature over the first two segments as
// sent, which is exactly the JWS signing input.
//
// Only a token jws.Verify accepted fills it, so an attacker without Clerk's
// key cannot put a header in, and a header is only remembered when
// "RS256 with this key" is all it says (see rememberable). It belongs to one
// key set: a JWKS refresh starts with an empty one, so a key Clerk has
// rotated out is never reached through it. Reads take no lock.
type knownHeaders struct {
	byHeader atomic.Pointer[map[string]*rsa.PublicKey]
	mu       sync.Mutex // serialises writers, which copy the map
}

// key returns the key remembered for header, or nil.
func (k *knownHeaders) key(header string) *rsa.PublicKey {
	if m := k.byHeader.Load(); m != nil {
		return (*m)[header]
	}
	return nil
}

// remember records that a token with this header segment verified with key.
func (k *knownHeaders) remember(header string, key *rsa.PublicKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.byHeader.Load()
	next := make(map[string]*rsa.PublicKey, 1)
	if old != nil {
		if _, ok := (*old)[header]; ok {
			return
		}
		if len(*old) < maxKnownHeaders {
			maps.Copy(next, *old)
		}
	}
	// A copy, so that the map does not keep the whole token alive.
	next[strings.Clone(header)] = key
	k.byHeader.Store(&next)
}

// unsupported reports whether h asks for processing this verifier does not
// do: crit names extensions a recipient must understand or refuse (RFC 7515
// §4.1.11) and none is understood here; b64 (RFC 7797) would change what was
// signed. Clerk sends neither.
func unsupported(h jws.Headers) bool {
	_, crit := h.Get(jws.CriticalKey)
	_, b64 := h.Get("b64")
	return crit || b64
}

// rememberable reports whether a verified header may be remembered: it names
// no key of its own (jwk, jku, x5u, x5c, x5t, x5t#S256). Those are never used
// to find the key, but a header carrying them is not one Clerk makes, and such
// a token is checked in full every time.
func rememberable(h jws.Headers) bool {
	return h.JWK() == nil && h.JWKSetURL() == "" && h.X509URL() == "" && h.X509CertChain() == nil &&
		h.X509CertThumbprint() == "" && h.X509CertThumbprintS256() == ""
}
