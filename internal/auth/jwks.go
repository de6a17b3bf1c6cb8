package auth

import (
	"cmp"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

const (
	// maxJWKSBytes caps the JWKS body; Clerk's is well under 2 KiB.
	maxJWKSBytes = 1 << 20
	// retryInitial and retryMax bound the backoff after a failed fetch.
	retryInitial = time.Second
	retryMax     = 30 * time.Second
)

// startJWKS starts the loop that owns every JWKS fetch: at start with backoff
// until the first success, every RefreshInterval after that, and on demand for
// unknown kids, never twice within MinRefreshInterval. A fetch is one GET
// bounded by ctx and the client's timeout, then jwk.Parse; a failed one keeps
// the keys already loaded.
func (v *Verifier) startJWKS(ctx context.Context, o Options) error {
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultFetchTimeout}
	} else if client.Timeout == 0 {
		c := *client
		c.Timeout = DefaultFetchTimeout
		client = &c
	}
	u := *o.JWKSURL
	v.jwksURL = &u
	v.client = client
	v.minRefresh = cmp.Or(o.MinRefreshInterval, DefaultMinRefreshInterval)
	v.refreshEvery = cmp.Or(o.RefreshInterval, DefaultRefreshInterval)
	v.kick = make(chan struct{}, 1)
	go v.run(ctx)
	return nil
}

// run performs every JWKS fetch until ctx ends.
func (v *Verifier) run(ctx context.Context) {
	defer v.stop()
	backoff := retryInitial
	timer := time.NewTimer(0) // the first fetch, at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-v.kick:
			timer.Stop()
		}
		next := v.refreshEvery
		if err := v.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			// Full jitter, so that replicas restarted together do not retry together.
			next = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, retryMax)
			v.log.WarnContext(ctx, "clerk jwks fetch failed", "error", err, "retry_in", next.String(),
				"keys_loaded", v.Ready() == nil)
		} else {
			backoff = retryInitial
		}
		timer.Reset(next)
	}
}

// fetch refreshes the key set once. On failure the cached keys stay.
func (v *Verifier) fetch(ctx context.Context) error {
	v.mu.Lock()
	v.lastFetch = time.Now()
	asked := v.pending
	v.mu.Unlock()

	ks, err := v.fetchKeys(ctx)
	if err != nil {
		v.m.refreshes[outcomeError].Inc()
	} else {
		v.keys.Store(ks)
		v.m.refreshes[outcomeSuccess].Inc()
		v.m.lastSuccess.SetToCurrentTime()
		v.markReady()
	}

	// Wake the requests that asked for this fetch. One that asked while it was
	// already running waits for the next one, which its kick starts at once.
	v.mu.Lock()
	if asked != nil {
		close(asked)
		if v.pending == asked {
			v.pending = nil
			select {
			case <-v.kick:
			default:
			}
		}
	}
	v.mu.Unlock()
	return err
}

// requestRefresh asks for a JWKS fetch because a token named an unknown kid.
// It returns a channel closed when that fetch ends, or nil when the rate bound
// (one fetch start per MinRefreshInterval) or shutdown refuses it. Concurrent
// callers share one fetch.
func (v *Verifier) requestRefresh() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return nil
	}
	if v.pending != nil {
		return v.pending
	}
	if time.Since(v.lastFetch) < v.minRefresh {
		return nil
	}
	v.pending = make(chan struct{})
	select {
	case v.kick <- struct{}{}:
	default:
	}
	return v.pending
}

func (v *Verifier) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stopped = true
	if v.pending != nil {
		close(v.pending)
		v.pending = nil
	}
}

// fetchKeys GETs the JWKS and keeps its signing keys.
func (v *Verifier) fetchKeys(ctx context.Context) (*keySet, error) {
	// The request is built around the URL the configuration parsed, rather
	// than from its text by http.NewRequest, which would parse it again.
	req := (&http.Request{
		Method: http.MethodGet,
		URL:    v.jwksURL,
		Header: http.Header{"Accept": {"application/json"}},
	}).WithContext(ctx)
	res, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading the jwks: %w", err)
	case res.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("jwks answered %s", res.Status)
	case len(body) > maxJWKSBytes:
		return nil, errors.New("jwks response larger than 1 MiB")
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("parsing the jwks: %w", err)
	}
	return signingKeys(set)
}

// signingKeys keeps the keys that may verify a session token: RSA, for
// signatures, RS256 or no alg, with a kid, at least 2048 bits; the first of
// each kid wins. It refuses a set with none, so that a broken or empty JWKS
// never replaces good keys.
func signingKeys(set jwk.Set) (*keySet, error) {
	ks := &keySet{byKID: make(map[string]*rsa.PublicKey, set.Len())}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k.KeyType() != jwa.RSA {
			continue
		}
		if u := k.KeyUsage(); u != "" && u != jwk.ForSignature.String() {
			continue
		}
		if a := k.Algorithm().String(); a != "" && a != jwa.RS256.String() {
			continue
		}
		kid := k.KeyID()
		if _, dup := ks.byKID[kid]; kid == "" || dup {
			continue
		}
		pub, err := k.PublicKey()
		if err != nil {
			continue
		}
		var raw rsa.PublicKey
		if err := pub.Raw(&raw); err != nil || raw.N.BitLen() < minRSABits {
			continue
		}
		ks.byKID[kid] = &raw
	}
	if len(ks.byKID) == 0 {
		return nil, errors.New("jwks has no usable RS256 signing key")
	}
	return ks, nil
}
