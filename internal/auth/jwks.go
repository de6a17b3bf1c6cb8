package auth

import (
	"bytes"
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
	// cacheWindow and cacheNever switch off jwk.Cache's own scheduler (see startJWKS).
	cacheWindow = 24 * time.Hour
	cacheNever  = 10 * 365 * 24 * time.Hour
)

// startJWKS registers the JWKS URL with a jwk.Cache and starts the loop that
// drives it.
//
// jwk.Cache (httprc v1.0.6) fetches, parses, filters through PostFetch and keeps
// the last good set when a fetch fails. Its own scheduler is switched off: every
// forced Refresh enqueues one more periodic refresh chain that never ends, so
// refreshes triggered by unknown kids would multiply background fetches without
// bound; and after a failed first fetch it waits its whole refresh interval
// before trying again. One loop here owns every fetch instead: at start with
// backoff until the first success, every RefreshInterval after that, and on
// demand for unknown kids, never twice within MinRefreshInterval.
func (v *Verifier) startJWKS(ctx context.Context, o Options) error {
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultFetchTimeout}
	} else if client.Timeout == 0 {
		c := *client
		c.Timeout = DefaultFetchTimeout
		client = &c
	}
	v.jwksURL = o.JWKSURL
	v.minRefresh = cmp.Or(o.MinRefreshInterval, DefaultMinRefreshInterval)
	v.refreshEvery = cmp.Or(o.RefreshInterval, DefaultRefreshInterval)
	v.kick = make(chan struct{}, 1)

	v.cache = jwk.NewCache(ctx, jwk.WithRefreshWindow(cacheWindow))
	err := v.cache.Register(o.JWKSURL,
		jwk.WithHTTPClient(boundedClient{client}),
		jwk.WithRefreshInterval(cacheNever),
		jwk.WithPostFetcher(jwk.PostFetchFunc(signingKeys)),
	)
	if err != nil {
		return fmt.Errorf("auth: register jwks: %w", err)
	}
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

	set, err := v.cache.Refresh(ctx, v.jwksURL)
	var ks *keySet
	if err == nil {
		ks, err = keySetFrom(set)
	}
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

// signingKeys keeps the keys that may verify a session token: RSA, for
// signatures, RS256 or no alg, with a kid, at least 2048 bits. It pins alg to
// RS256 on each, and refuses a set with none, so that a broken or empty JWKS
// never replaces good cached keys.
func signingKeys(_ string, set jwk.Set) (jwk.Set, error) {
	out := jwk.NewSet()
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
		if kid == "" {
			continue
		}
		if _, dup := out.LookupKeyID(kid); dup {
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
		if err := pub.Set(jwk.AlgorithmKey, jwa.RS256); err != nil {
			return nil, err
		}
		if err := out.AddKey(pub); err != nil {
			return nil, err
		}
	}
	if out.Len() == 0 {
		return nil, errors.New("jwks has no usable RS256 signing key")
	}
	return out, nil
}

// keySetFrom parses the filtered set once, so that requests never do.
func keySetFrom(set jwk.Set) (*keySet, error) {
	ks := &keySet{byKID: make(map[string]*rsa.PublicKey, set.Len())}
	for i := range set.Len() {
		k, _ := set.Key(i)
		var raw rsa.PublicKey
		if err := k.Raw(&raw); err != nil {
			return nil, fmt.Errorf("jwks key %q: %w", k.KeyID(), err)
		}
		ks.byKID[k.KeyID()] = &raw
	}
	if len(ks.byKID) == 0 {
		return nil, errors.New("jwks has no usable RS256 signing key")
	}
	return ks, nil
}

// boundedClient adapts an *http.Client to jwk.HTTPClient. It reads the whole
// body, at most maxJWKSBytes, and closes it: jwk.Cache leaves the body of a
// non-200 answer unread and unclosed, which would leak a connection per failed
// fetch. httprc's interface carries no context; the client's timeout bounds
// the fetch.
type boundedClient struct{ c *http.Client }

func (b boundedClient) Get(u string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := b.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, errors.New("jwks response larger than 1 MiB")
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}
