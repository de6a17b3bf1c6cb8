package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Budget is the longest one Allow waits for Redis. A checkout is a click: a
// slower Redis would be felt by every user, so beyond this the request is let
// through instead.
const Budget = 100 * time.Millisecond

// WarnInterval is the least time between two warnings about Redis failing:
// one line says that limits are off, a thousand say nothing more.
const WarnInterval = time.Minute

// keyPrefix namespaces our keys in a Redis that other programs may share.
// redis_rate adds its own "rate:" in front, so a user's key reads
// rate:payments-api:<user id>, and expires once the user's allowance is full
// again.
const keyPrefix = "payments-api:"

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// Client says where Redis is and how to reach it, as redis.ParseURL
	// returns it; required. NewRedis works on a copy.
	Client *redis.Options
	// Rate is the limit per user; required.
	Rate Rate
	// Registerer receives payments_api_rate_limit_errors_total; nil
	// registers nothing.
	Registerer prometheus.Registerer
	// Logger receives the warning that Redis fails; nil discards it.
	Logger *slog.Logger
	// Now is the clock that spaces the warnings; nil means time.Now.
	Now func() time.Time
}

// Redis is a per-user limit kept in Redis with the GCRA algorithm, so that
// every replica sharing that Redis enforces one limit per user. Redis'
// clock decides, so replicas' clocks need not agree.
type Redis struct {
	client  *redis.Client
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	budget  time.Duration // Budget; longer in tests that are not about it
	errors  prometheus.Counter
	warn    *warner
}

// NewRedis returns a limiter on the Redis o.Client describes. It does not
// connect: a Redis that is down at start only means requests are let through
// until it answers.
func NewRedis(o RedisOptions) (*Redis, error) {
	if o.Client == nil {
		return nil, errors.New("ratelimit: no Redis client options")
	}
	if err := o.Rate.check(); err != nil {
		return nil, err
	}
	errs := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "payments_api_rate_limit_errors_total",
		Help: "Rate limit checks that Redis did not answer within 100 ms (down, slow or refusing); each of those requests was allowed.",
	})
	if o.Registerer != nil {
		if err := o.Registerer.Register(errs); err != nil {
			return nil, fmt.Errorf("ratelimit: register metrics: %w", err)
		}
	}
	client := redis.NewClient(clientOptions(o.Client))
	return &Redis{
		client:  client,
		limiter: redis_rate.NewLimiter(client),
		limit:   redis_rate.Limit{Rate: o.Rate.N, Burst: o.Rate.N, Period: o.Rate.Per},
		budget:  Budget,
		errors:  errs,
		warn:    newWarner(o.Logger, o.Now, o.Client.Password),
	}, nil
}

// NewRedisURL is NewRedis on the Redis that rawURL names (redis:// or
// rediss://, with user, password, database and go-redis' query options). Its
// error never contains the URL, which may hold a password.
func NewRedisURL(rawURL string, o RedisOptions) (*Redis, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	o.Client = c
	return NewRedis(o)
}

// ParseURL reads a redis:// or rediss:// URL into client options. Its error
// never contains the URL: the standard library's URL errors quote it whole,
// password included, so they are replaced by a description; go-redis' own
// name the scheme, database or option at fault, never the user information.
func ParseURL(rawURL string) (*redis.Options, error) {
	o, err := redis.ParseURL(rawURL)
	if _, ok := errors.AsType[*url.Error](err); ok {
		return nil, errors.New("ratelimit: the Redis URL does not parse (is a character in the password not percent-encoded?)")
	}
	if err != nil {
		return nil, fmt.Errorf("ratelimit: the Redis URL: %w", err)
	}
	return o, nil
}

// clientOptions is o with what the budget relies on: deadlines taken from the
// context, and failures that fail fast rather than retry past the budget.
//
// One thing go-redis does on its own and cannot be told not to: after
// PoolSize failed dials it stops dialling and probes once a second until one
// succeeds, so limits hold again within about a second of Redis answering.
func clientOptions(o *redis.Options) *redis.Options {
	c := *o
	c.ContextTimeoutEnabled = true
	if c.MaxRetries == 0 {
		// One retry, for a pooled connection that Redis closed meanwhile.
		c.MaxRetries = 1
	}
	if c.DialerRetries == 0 {
		// A refused connection is an answer: do not spend the budget
		// dialling again.
		c.DialerRetries = 1
	}
	if c.ClientName == "" {
		c.ClientName = "payments-api" // shows in CLIENT LIST
	}
	return &c
}

// Allow takes one request from user's allowance in Redis. When none is left
// it returns false and Redis' answer for how long until one is (refused
// requests take nothing). When Redis fails or takes longer than Budget, the
// request is allowed, counted and, at most once per WarnInterval, logged.
func (r *Redis) Allow(ctx context.Context, user string) (ok bool, retryAfter time.Duration) {
	callCtx, cancel := context.WithTimeout(ctx, r.budget)
	defer cancel()
	res, err := r.limiter.Allow(callCtx, keyPrefix+user, r.limit)
	switch {
	case err != nil && ctx.Err() != nil:
		// The caller gave up, not Redis; the request goes nowhere anyway.
		return true, 0
	case err != nil:
		r.errors.Inc()
		r.warn.failed(ctx, err)
		return true, 0
	case res.Allowed > 0:
		return true, 0
	default:
		// A refusal always says when to come back, if only a moment later.
		return false, max(res.RetryAfter, time.Millisecond)
	}
}

// Close closes the connections to Redis; Allow then lets every request
// through. Call it after the server stopped serving.
func (r *Redis) Close() error {
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("ratelimit: closing the Redis client: %w", err)
	}
	return nil
}

// warner logs Redis failures at most once per WarnInterval, saying how many
// went unlogged in between, without the password.
type warner struct {
	log      *slog.Logger
	now      func() time.Time
	password string

	mu         sync.Mutex
	next       time.Time // no warning before
	suppressed int       // failures since the last warning
}

func newWarner(log *slog.Logger, now func() time.Time, password string) *warner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &warner{log: log, now: now, password: password}
}

func (w *warner) failed(ctx context.Context, err error) {
	now := w.now()
	w.mu.Lock()
	if now.Before(w.next) {
		w.suppressed++
		w.mu.Unlock()
		return
	}
	w.next = now.Add(WarnInterval)
	suppressed := w.suppressed
	w.suppressed = 0
	w.mu.Unlock()

	w.log.WarnContext(ctx, "Redis failed the rate limit check: requests are allowed without a limit until it answers",
		slog.String("error", w.redact(err.Error())),
		slog.Int("failures_not_logged", suppressed),
		slog.Duration("budget", Budget))
}

// redact removes the password from s. go-redis does not put it in its
// errors; this keeps it so if that ever changes.
func (w *warner) redact(s string) string {
	if w.password == "" {
		return s
	}
	return strings.ReplaceAll(s, w.password, "[redacted]")
}
