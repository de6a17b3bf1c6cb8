package billing

import (
	"cmp"
	"container/list"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/acme/payments-api/internal/problem"
)

// Bounds of the subscription state answer and its cache.
const (
	// MaxSubscriptionCacheTTL is the longest a user's state is served from
	// memory: after a change in the portal, the page shows it within this.
	MaxSubscriptionCacheTTL = 10 * time.Second
	// DefaultMaxCachedUsers caps the users whose state is kept in memory.
	DefaultMaxCachedUsers = 10_000
	// maxListed is how many subscriptions the answer lists, newest first.
	maxListed = 10
)

// SubscriptionOptions configures SubscriptionHandler.
type SubscriptionOptions struct {
	// Stripe is the Stripe port, normally a *StripeClient.
	Stripe Stripe
	// Customers finds the user's Stripe customer.
	Customers *Customers
	// CacheTTL is how long a user's state is reused, at most
	// MaxSubscriptionCacheTTL; 0 means MaxSubscriptionCacheTTL.
	CacheTTL time.Duration
	// MaxCachedUsers caps the users whose state is cached; 0 means
	// DefaultMaxCachedUsers.
	MaxCachedUsers int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type subscriptionHandler struct {
	stripe    Stripe
	customers *Customers
	cache     *stateCache
	now       func() time.Time
}

// SubscriptionHandler returns the GET /stripe/subscription handler: the user's
// Stripe customer and subscriptions, as the frontend shows them. It must run
// behind the auth middleware. It is not rate limited: a page may ask on every
// load, and the short cache keeps that off Stripe.
func SubscriptionHandler(o SubscriptionOptions) (http.Handler, error) {
	switch {
	case o.Stripe == nil:
		return nil, errors.New("billing: subscription: no Stripe port")
	case o.Customers == nil:
		return nil, errors.New("billing: subscription: no customer rule")
	case o.CacheTTL < 0 || o.CacheTTL > MaxSubscriptionCacheTTL:
		return nil, fmt.Errorf("billing: subscription: cache TTL %v, want 0 to %v", o.CacheTTL, MaxSubscriptionCacheTTL)
	case o.MaxCachedUsers < 0:
		return nil, fmt.Errorf("billing: subscription: negative MaxCachedUsers %d", o.MaxCachedUsers)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &subscriptionHandler{
		stripe:    o.Stripe,
		customers: o.Customers,
		cache:     newStateCache(cmp.Or(o.CacheTTL, MaxSubscriptionCacheTTL), cmp.Or(o.MaxCachedUsers, DefaultMaxCachedUsers)),
		now:       now,
	}, nil
}

// subscriptionState is the answer of GET /stripe/subscription. Every key is
// always present, null when there is nothing, so that the frontend never has
// to tell a missing key from an empty one.
type subscriptionState struct {
	CustomerID    *string            `json:"customer_id"`
	Subscriptions []subscriptionJSON `json:"subscriptions"`
}

type subscriptionJSON struct {
	ID                string  `json:"id"`
	Status            string  `json:"status"`
	PriceID           *string `json:"price_id"`
	Quantity          *int64  `json:"quantity"`
	CurrentPeriodEnd  *int64  `json:"current_period_end"`
	CancelAtPeriodEnd bool    `json:"cancel_at_period_end"`
	TrialEnd          *int64  `json:"trial_end"`
}

func (h *subscriptionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	state, err := h.serve(r)
	if err != nil {
		problem.Write(w, r, err)
		return
	}
	writeJSON(w, state)
}

func (h *subscriptionHandler) serve(r *http.Request) (subscriptionState, error) {
	ctx := r.Context()
	if r.Method != http.MethodGet {
		return subscriptionState{}, methodNotAllowed(http.MethodGet)
	}
	who, err := userOf(ctx)
	if err != nil {
		return subscriptionState{}, err
	}
	if s, ok := h.cache.get(who.UserID, h.now()); ok {
		return s, nil
	}

	state := subscriptionState{Subscriptions: []subscriptionJSON{}}
	customerID, err := h.customers.Find(ctx, who.UserID)
	if err != nil {
		_, perr := upstreamProblem(err, "tell your subscription state")
		return subscriptionState{}, perr
	}
	if customerID != "" {
		state.CustomerID = &customerID
		subs, err := h.stripe.Subscriptions(ctx, SubscriptionQuery{
			CustomerID: customerID, IncludeCanceled: true, Limit: MaxPage,
		})
		if err != nil {
			_, perr := upstreamProblem(err, "tell your subscription state")
			return subscriptionState{}, perr
		}
		state.Subscriptions = listed(subs)
	}
	h.cache.put(who.UserID, state, h.now())
	return state, nil
}

// listed returns what the answer lists of subs: newest first, at most
// maxListed, without the incomplete_expired ones, which are failed first
// payments that never became a subscription.
func listed(subs []Subscription) []subscriptionJSON {
	subs = slices.DeleteFunc(slices.Clone(subs), func(s Subscription) bool { return s.Status == StatusIncompleteExpired })
	slices.SortStableFunc(subs, func(a, b Subscription) int { return cmp.Compare(b.Created, a.Created) })
	out := make([]subscriptionJSON, 0, min(len(subs), maxListed))
	for _, s := range subs[:min(len(subs), maxListed)] {
		out = append(out, subscriptionJSON{
			ID:                s.ID,
			Status:            string(s.Status),
			PriceID:           nonZero(s.PriceID),
			Quantity:          nonZero(s.Quantity),
			CurrentPeriodEnd:  nonZero(s.CurrentPeriodEnd),
			CancelAtPeriodEnd: s.CancelAtPeriodEnd,
			TrialEnd:          nonZero(s.TrialEnd),
		})
	}
	return out
}

// nonZero returns a pointer to v, or nil (JSON null) for the zero value.
func nonZero[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

// stateCache keeps each user's answer for a fixed time, for a bounded number
// of users. Every entry lives equally long, so the order of insertion is the
// order of expiry: the oldest entries are dropped first, expired or not.
type stateCache struct {
	ttl time.Duration
	max int

	mu    sync.Mutex
	order *list.List // of *stateEntry, oldest first
	users map[string]*list.Element
}

type stateEntry struct {
	user    string
	state   subscriptionState
	expires time.Time
}

func newStateCache(ttl time.Duration, max int) *stateCache {
	return &stateCache{ttl: ttl, max: max, order: list.New(), users: make(map[string]*list.Element)}
}

// get returns user's state when it is fresh at now.
func (c *stateCache) get(user string, now time.Time) (subscriptionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.users[user]
	if !ok {
		return subscriptionState{}, false
	}
	e := el.Value.(*stateEntry)
	if !now.Before(e.expires) {
		return subscriptionState{}, false
	}
	return e.state, true
}

// put stores user's state as read at now, and drops expired entries and, past
// the cap, the oldest ones.
func (c *stateCache) put(user string, s subscriptionState, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.users[user]; ok {
		c.order.Remove(el)
	}
	c.users[user] = c.order.PushBack(&stateEntry{user: user, state: s, expires: now.Add(c.ttl)})
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		e := front.Value.(*stateEntry)
		if c.order.Len() <= c.max && now.Before(e.expires) {
			return
		}
		c.order.Remove(front)
		delete(c.users, e.user)
	}
}

// len returns the number of users cached.
func (c *stateCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
