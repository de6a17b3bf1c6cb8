package delivery

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

type noAttempts struct{}

func (noAttempts) Attempt(context.Context, string, string, []byte) error { return nil }

func newConfig(t *testing.T, opts Options) *river.Config {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	q, err := New(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	return q.riverConfig()
}

// TestRiverConfig pins how River's defaults are tuned, for the production
// defaults and for configured values.
func TestRiverConfig(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name                                    string
		opts                                    Options
		maxAttempts, workers                    int
		completed, jobTimeout, rescue, softStop time.Duration
	}{
		{"defaults", Options{Forwarder: noAttempts{}},
			25, 10, 7 * day, 15 * time.Second, 45 * time.Second, 20 * time.Second},
		{"configured", Options{Forwarder: noAttempts{}, MaxAttempts: 7, Workers: 50, Retention: 2 * day, ForwardTimeout: 3 * time.Second, ShutdownTimeout: 5 * time.Second},
			7, 50, 2 * day, 8 * time.Second, 38 * time.Second, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newConfig(t, tt.opts)
			if cfg.MaxAttempts != tt.maxAttempts {
				t.Errorf("MaxAttempts = %d, want %d", cfg.MaxAttempts, tt.maxAttempts)
			}
			if got := cfg.Queues[QueueName].MaxWorkers; got != tt.workers || len(cfg.Queues) != 1 {
				t.Errorf("Queues = %+v, want %s with %d workers", cfg.Queues, QueueName, tt.workers)
			}
			for _, d := range []struct {
				name      string
				got, want time.Duration
			}{
				{"CompletedJobRetentionPeriod", cfg.CompletedJobRetentionPeriod, tt.completed},
				{"DiscardedJobRetentionPeriod", cfg.DiscardedJobRetentionPeriod, 30 * day},
				{"CancelledJobRetentionPeriod", cfg.CancelledJobRetentionPeriod, 30 * day},
				{"JobTimeout", cfg.JobTimeout, tt.jobTimeout},
				{"RescueStuckJobsAfter", cfg.RescueStuckJobsAfter, tt.rescue},
				{"SoftStopTimeout", cfg.SoftStopTimeout, tt.softStop},
				{"FetchCooldown", cfg.FetchCooldown, 2 * time.Millisecond},
			} {
				if d.got != d.want {
					t.Errorf("%s = %v, want %v", d.name, d.got, d.want)
				}
			}
			if cfg.RetryPolicy != nil {
				t.Errorf("RetryPolicy = %T, want River's default", cfg.RetryPolicy)
			}

			// The budget for a SIGKILLed replica's delivery: rescued after
			// RescueStuckJobsAfter, noticed by the rescuer within its 30 s
			// interval, moved by the 5 s scheduler after a first retry of at most
			// 1.1 s, then delivered: within FORWARD_TIMEOUT + 2 minutes.
			forwardTimeout := tt.jobTimeout - jobTimeoutMargin
			worst := cfg.RescueStuckJobsAfter + 30*time.Second + 5*time.Second + 1100*time.Millisecond + forwardTimeout
			if budget := forwardTimeout + 2*time.Minute; worst > budget {
				t.Errorf("a dead replica's delivery may take %v, beyond the %v budget", worst, budget)
			}
			if cfg.RescueStuckJobsAfter <= cfg.JobTimeout {
				t.Errorf("RescueStuckJobsAfter %v must exceed JobTimeout %v, or live jobs get rescued", cfg.RescueStuckJobsAfter, cfg.JobTimeout)
			}
		})
	}

	// Dashboards and alerts read the queue gauges as at most 15 s old.
	if DefaultMetricsInterval > 15*time.Second {
		t.Errorf("DefaultMetricsInterval = %v, want at most 15 s", DefaultMetricsInterval)
	}

	if _, err := New(nil, Options{MaxAttempts: -1}); err == nil {
		t.Error("New with negative MaxAttempts succeeded")
	}
	if cfg := newConfig(t, Options{}); cfg.Workers != nil || cfg.Queues != nil {
		t.Error("a queue without a Forwarder has workers")
	}
}

// TestRiverDefaultBackoff pins River's default backoff, which ours is: n⁴
// seconds ±10 % after the n-th failure, and 25 attempts last about three weeks.
func TestRiverDefaultBackoff(t *testing.T) {
	policy := &river.DefaultClientRetryPolicy{}
	var total time.Duration
	for n := 1; n < DefaultMaxAttempts; n++ {
		job := &rivertype.JobRow{Errors: make([]rivertype.AttemptError, n-1)}
		base := time.Duration(n*n*n*n) * time.Second
		got := time.Until(policy.NextRetry(job))
		if lo, hi := base*89/100, base*111/100; got < lo || got > hi {
			t.Errorf("wait after failure %d = %v, want %v ±10 %%", n, got, base)
		}
		total += base
	}
	if total < 18*24*time.Hour || total > 24*24*time.Hour {
		t.Errorf("%d attempts span %v, want about three weeks", DefaultMaxAttempts, total)
	}
}

// TestUniqueStates: an event id is unique across every state, so that a
// discarded event is found (and requeued) rather than inserted again.
func TestUniqueStates(t *testing.T) {
	if !uniqueOpts.ByArgs || !slices.Equal(uniqueOpts.ByState, rivertype.JobStates()) {
		t.Errorf("uniqueOpts = %+v, want by args over every state", uniqueOpts)
	}
}

// TestRiverLogsAtWarn: River's info lines (one per failed job) are dropped;
// its warnings and errors come through.
func TestRiverLogsAtWarn(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(minLevel{Handler: slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), min: slog.LevelWarn})
	log.With("k", "v").Info("job errored; retrying")
	log.WithGroup("g").Warn("producer: fetch failed")
	if got := buf.String(); bytes.Contains(buf.Bytes(), []byte("retrying")) || !bytes.Contains(buf.Bytes(), []byte("fetch failed")) {
		t.Errorf("logged %q, want the warning only", got)
	}
}
