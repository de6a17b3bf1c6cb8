package deliverytest_test

import (
	"context"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/deliverytest"
	"github.com/acme/payments-api/internal/pgtest"
	"github.com/acme/payments-api/internal/postgres"
)

func TestMain(m *testing.M) { pgtest.Run(m) }

// TestBacklog: the events are in the queue as Enqueue leaves them, waiting.
func TestBacklog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pgtest.Database(t)
	if err := deliverytest.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	if err := deliverytest.Backlog(ctx, dsn, 3); err != nil {
		t.Fatal(err)
	}
	pool, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	q, err := delivery.New(pool, delivery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := q.List(ctx, delivery.ListParams{States: []string{"available"}, Type: "invoice.paid"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || evs[0].EventID != "evt_backlog_3" || evs[2].EventID != "evt_backlog_1" {
		t.Fatalf("queue = %+v, want evt_backlog_1…3 available", evs)
	}
}
