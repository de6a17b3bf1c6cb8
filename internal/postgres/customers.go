package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Customers is the customers table: the Stripe Customer of each Clerk user,
// so that checkout finds it in one indexed read instead of a search at Stripe.
type Customers struct {
	pool *pgxpool.Pool
}

// NewCustomers returns the table on pool.
func NewCustomers(pool *pgxpool.Pool) *Customers { return &Customers{pool: pool} }

// Customer returns the Stripe customer id recorded for userID, or "" and nil
// when there is none. How long it may take is up to ctx.
func (c *Customers) Customer(ctx context.Context, userID string) (string, error) {
	var customerID string
	err := c.pool.QueryRow(ctx, "SELECT customer_id FROM customers WHERE user_id = $1", userID).Scan(&customerID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("postgres: reading the customer of a user: %w", err)
	}
	return customerID, nil
}

// SaveCustomer records customerID as userID's Stripe customer. It is
// idempotent and the first writer wins: when two first checkouts race, both
// created the same customer (Stripe's idempotency key derives from the user),
// and a later save of a different id for the same user changes nothing. A
// customer id already recorded for another user is an error: one customer
// paying for two accounts is a bug to see, not to paper over.
func (c *Customers) SaveCustomer(ctx context.Context, userID, customerID string) error {
	_, err := c.pool.Exec(ctx,
		"INSERT INTO customers (user_id, customer_id) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
		userID, customerID)
	if err != nil {
		return fmt.Errorf("postgres: saving the customer of a user: %w", err)
	}
	return nil
}
