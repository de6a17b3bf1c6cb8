// Package deliverytest prepares the delivery queue's database for tests and
// benchmarks: the schema migrated, and a backlog of events, as an outage
// would leave it, inserted in one statement.
package deliverytest

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/postgres"
)

// Migrate brings the database at dsn to the current schema (River's and
// ours), as `payments-api migrate` does, quietly. It fits pgtest.NewTemplate.
func Migrate(ctx context.Context, dsn string) error {
	pool, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		return fmt.Errorf("deliverytest: %w", err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		return fmt.Errorf("deliverytest: %w", err)
	}
	return nil
}

// Backlog inserts n events waiting for delivery (evt_backlog_1 … n, type
// invoice.paid) into the migrated database at dsn, straight into River's
// table as Enqueue would leave them: queueing 50,000 through Enqueue would
// take a minute and measure something else. Their bodies are small events of
// their own id.
func Backlog(ctx context.Context, dsn string, n int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("deliverytest: connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `
		INSERT INTO river_job (args, kind, max_attempts, queue, state, scheduled_at)
		SELECT jsonb_build_object(
		           'event_id', 'evt_backlog_' || i,
		           'type', 'invoice.paid',
		           'body', encode(convert_to('{"id":"evt_backlog_' || i || '","object":"event","type":"invoice.paid"}', 'UTF8'), 'base64')),
		       $1, $2, $3, 'available', now()
		FROM generate_series(1, $4::int) AS i`,
		delivery.Kind, delivery.DefaultMaxAttempts, delivery.QueueName, n)
	if err != nil {
		return fmt.Errorf("deliverytest: inserting the backlog: %w", err)
	}
	return nil
}
