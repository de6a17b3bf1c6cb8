package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/auth"
	"github.com/acme/payments-api/internal/requestlog"
)

// CustomerStore remembers each user's Stripe customer, so that finding it costs
// no Stripe call. Implementations never hold a customer for a user that
// Stripe did not create.
type CustomerStore interface {
	// Customer returns the user's customer id, or "" and nil when the store
	// has none.
	Customer(ctx context.Context, userID string) (customerID string, err error)
	// SaveCustomer records the user's customer. It is idempotent, and the
	// first writer wins.
	SaveCustomer(ctx context.Context, userID, customerID string) error
}

// UserIDMetadataKey is the customer metadata key that holds the Clerk user id:
// it is how a user's customer is found in Stripe, and how a support person
// reading the Stripe dashboard finds the user.
const UserIDMetadataKey = "clerk_user_id"

// StoreTimeout bounds each call to the CustomerStore: a slow database costs a
// checkout at most this much before Stripe is asked instead.
const StoreTimeout = time.Second

// Outcomes counted in payments_api_customers_total{outcome}.
const (
	CustomerFound   = "found"
	CustomerCreated = "created"
	CustomerError   = "error"
)

// CustomerOptions configures NewCustomers.
type CustomerOptions struct {
	// Stripe is the Stripe port.
	Stripe Stripe
	// Store is asked first when set; nil asks Stripe's Customer Search only.
	Store CustomerStore
	// Registerer receives payments_api_customers_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// Customers is the rule "one Stripe customer per user": it finds the user's
// customer (in the store, else with Stripe's Customer Search) or creates it
// so that concurrent first checkouts, on any replicas, create one.
type Customers struct {
	stripe   Stripe
	store    CustomerStore
	outcomes map[string]prometheus.Counter
}

// NewCustomers returns the customer rule. An error means invalid options or a
// metric that cannot be registered.
func NewCustomers(o CustomerOptions) (*Customers, error) {
	if o.Stripe == nil {
		return nil, errors.New("billing: customers: no Stripe port")
	}
	outcomes, err := outcomeCounters(o.Registerer, "payments_api_customers_total",
		"Stripe customers looked up for a checkout, by outcome: found (reused, however found), created, error.",
		[]string{CustomerFound, CustomerCreated, CustomerError})
	if err != nil {
		return nil, err
	}
	return &Customers{stripe: o.Stripe, store: o.Store, outcomes: outcomes}, nil
}

// Find returns the user's customer id, or "" when the user has none yet. It
// never creates one.
func (c *Customers) Find(ctx context.Context, userID string) (string, error) {
	id, _, err := c.find(ctx, userID)
	return id, err
}

// FindOrCreate returns the user's customer id, creating the customer when the
// user has none; created tells which. It counts the outcome.
func (c *Customers) FindOrCreate(ctx context.Context, who auth.Identity) (id string, created bool, err error) {
	defer func() {
		switch {
		case err != nil:
			c.outcomes[CustomerError].Inc()
		case created:
			c.outcomes[CustomerCreated].Inc()
		default:
			c.outcomes[CustomerFound].Inc()
		}
	}()
	id, storeUp, err := c.find(ctx, who.UserID)
	if err != nil || id != "" {
		return id, false, err
	}
	cu, err := c.stripe.CreateCustomer(ctx, customerParams(who))
	if err != nil {
		return "", false, err
	}
	if cu.ID == "" {
		return "", false, errors.New("billing: Stripe created a customer without an id")
	}
	if storeUp {
		c.save(ctx, who.UserID, cu.ID)
	}
	return cu.ID, true, nil
}

// find asks the store, then Customer Search, and saves in the store what
// search found. storeUp tells whether the store answered: one that did not is
// not asked again within the request, so that a database outage costs a
// request StoreTimeout once, not once per call.
func (c *Customers) find(ctx context.Context, userID string) (id string, storeUp bool, err error) {
	id, storeUp = c.fromStore(ctx, userID)
	if id != "" {
		return id, storeUp, nil
	}
	if id, err = c.search(ctx, userID); err != nil || id == "" {
		return "", storeUp, err
	}
	if storeUp {
		c.save(ctx, userID, id)
	}
	return id, storeUp, nil
}

// customerParams is the customer to create for who. Stripe replays an
// idempotent request only when its parameters are identical, so they depend
// on nothing but the user id and the email: two first checkouts of one user,
// on any replicas, send the same request and get the same customer.
//
// The key matters because Customer Search is eventually consistent: a new
// customer becomes searchable only after about a minute (longer during
// Stripe incidents), so a second checkout within that window does not find
// the first one's customer and creates it again. The key makes that second
// create return the first customer. Keys live 24 hours, far beyond the
// minute; after that, search finds the customer and no create is sent.
func customerParams(who auth.Identity) CustomerParams {
	sum := sha256.Sum256([]byte(who.UserID))
	return CustomerParams{
		Email:          who.Email,
		Metadata:       map[string]string{UserIDMetadataKey: who.UserID},
		IdempotencyKey: "customer:" + hex.EncodeToString(sum[:]),
	}
}

// fromStore asks the store, within StoreTimeout; up is false when there is
// no store or it failed. A store that fails or is too slow is only logged:
// Stripe is asked instead, so that a database outage never stops a checkout.
func (c *Customers) fromStore(ctx context.Context, userID string) (id string, up bool) {
	if c.store == nil {
		return "", false
	}
	sctx, cancel := context.WithTimeout(ctx, StoreTimeout)
	defer cancel()
	id, err := c.store.Customer(sctx, userID)
	if err != nil {
		requestlog.Add(ctx, slog.String("customer_store", storeFailure(err)))
		return "", false
	}
	return id, true
}

// save records the customer in the store, within StoreTimeout. A failure is
// only logged: the customer exists in Stripe, where search finds it.
func (c *Customers) save(ctx context.Context, userID, customerID string) {
	sctx, cancel := context.WithTimeout(ctx, StoreTimeout)
	defer cancel()
	if err := c.store.SaveCustomer(sctx, userID, customerID); err != nil {
		requestlog.Add(ctx, slog.String("customer_store", storeFailure(err)))
	}
}

// storeFailure names a store failure for the log without the store's own
// text, which may describe the database.
func storeFailure(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "error"
}

// search finds the user's customer with Customer Search. Should there be
// several (made by hand in the dashboard, or before this rule existed), the
// oldest is the user's: every replica picks the same one.
func (c *Customers) search(ctx context.Context, userID string) (string, error) {
	found, err := c.stripe.SearchCustomers(ctx, searchQuery(userID))
	if err != nil {
		return "", err
	}
	var oldest Customer
	for _, cu := range found {
		if oldest.ID == "" || cu.Created < oldest.Created || (cu.Created == oldest.Created && cu.ID < oldest.ID) {
			oldest = cu
		}
	}
	return oldest.ID, nil
}

// searchQuery is the Customer Search query for the user's customer. A quote
// or backslash in the id is escaped, so that an id cannot change the query.
func searchQuery(userID string) string {
	return "metadata['" + UserIDMetadataKey + "']:'" + queryEscaper.Replace(userID) + "'"
}

// queryEscaper escapes a string for a quoted value of Stripe's search query
// language. A Replacer is safe for concurrent use and costly to build.
var queryEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)
