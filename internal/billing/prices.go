package billing

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// priceCache remembers Stripe Prices for a while, so that a checkout costs one
// Stripe call, not two. Only allowed price ids reach it, so it is bounded by
// the configuration and needs no eviction. Failures are not cached: a price
// created after a failed lookup is found on the next click.
type priceCache struct {
	stripe Stripe
	ttl    time.Duration
	now    func() time.Time
	group  singleflight.Group

	mu      sync.Mutex
	entries map[string]cachedPrice
}

type cachedPrice struct {
	price   Price
	expires time.Time
}

func newPriceCache(s Stripe, ttl time.Duration, now func() time.Time) *priceCache {
	return &priceCache{stripe: s, ttl: ttl, now: now, entries: make(map[string]cachedPrice)}
}

// get returns the price id, from the cache when fresh. Concurrent misses for
// the same id share one Stripe call.
func (c *priceCache) get(ctx context.Context, id string) (Price, error) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && c.now().Before(e.expires) {
		return e.price, nil
	}

	ch := c.group.DoChan(id, func() (any, error) {
		// Detached from the caller's cancellation: the lookup is shared, and
		// one impatient client must not fail the others. The port bounds it
		// with its own timeout.
		p, err := c.stripe.Price(context.WithoutCancel(ctx), id)
		if err != nil {
			return Price{}, err
		}
		c.mu.Lock()
		c.entries[id] = cachedPrice{price: p, expires: c.now().Add(c.ttl)}
		c.mu.Unlock()
		return p, nil
	})
	select {
	case res := <-ch:
		return res.Val.(Price), res.Err
	case <-ctx.Done():
		return Price{}, ctx.Err()
	}
}
