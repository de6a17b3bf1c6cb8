// Package postgres connects payments-api to the user's PostgreSQL: the
// connection pool, the schema (River's queue tables and our own, brought up to
// date by Migrate and checked by CheckSchema at start-up), and the customers
// table.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxConns       = 20
	DefaultConnectTimeout = 5 * time.Second
)

// Options configures Open.
type Options struct {
	// MaxConns bounds the pool (DefaultMaxConns when zero). A pool_max_conns
	// parameter in the URL wins over it.
	MaxConns int32
	// ConnectTimeout bounds each connection attempt (DefaultConnectTimeout when
	// zero), so that an unreachable server fails a request instead of hanging
	// it. A connect_timeout parameter in the URL wins over it.
	ConnectTimeout time.Duration
	// ApplicationName shows in pg_stat_activity, to tell our sessions from the
	// other users of a shared database ("payments-api" when empty). An
	// application_name parameter in the URL wins over it.
	ApplicationName string
}

// Open returns a pool for the database at dsn, a postgres:// URL. It does not connect: a server
// that is down at start-up is not an error here, every use of the pool tries
// again.
func Open(ctx context.Context, dsn string, opts Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's error quotes the URL, password masked on a best-effort basis:
		// none of it is repeated, as the whole URL is a secret.
		return nil, errors.New("postgres: the URL is not a valid PostgreSQL connection URL")
	}
	if !hasParam(dsn, "pool_max_conns") {
		cfg.MaxConns = opts.MaxConns
		if cfg.MaxConns <= 0 {
			cfg.MaxConns = DefaultMaxConns
		}
	}
	if !hasParam(dsn, "connect_timeout") {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
		if cfg.ConnConfig.ConnectTimeout <= 0 {
			cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
		}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "payments-api"
		if opts.ApplicationName != "" {
			cfg.ConnConfig.RuntimeParams["application_name"] = opts.ApplicationName
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: creating the pool: %w", err)
	}
	return pool, nil
}

// hasParam reports whether the URL's query sets key.
func hasParam(dsn, key string) bool {
	u, err := url.Parse(dsn)
	return err == nil && u.Query().Has(key)
}
