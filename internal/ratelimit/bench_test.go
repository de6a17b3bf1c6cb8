package ratelimit

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/payments-api/internal/redistest"
)

// BenchmarkAllow measures the time one limit check adds to a checkout, with
// the service's default rate (10/m) over a thousand users, so that both
// answers (allowed, refused) are in the mix. Beside ns/op it reports the
// 50th and 99th percentiles of single calls (the target for Redis on the same
// host: p99 ≤ 1 ms) and the checks that failed open. redis-ping is the
// baseline: a bare PING round trip on the same kind of client, the least any
// check in Redis can cost on this machine at this moment.
func BenchmarkAllow(b *testing.B) {
	r := Rate{N: 10, Per: time.Minute}
	b.Run("memory", func(b *testing.B) {
		m, err := NewMemory(MemoryOptions{Rate: r})
		if err != nil {
			b.Fatal(err)
		}
		benchmarkAllow(b, m, nil)
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b, redistest.Options{})
		l := newRedisEnv(b, srv.URL(), r)
		l.budget = Budget
		benchmarkAllow(b, l, l)
	})
	b.Run("redis-ping", func(b *testing.B) {
		srv := redistest.Start(b, redistest.Options{})
		c := rawClient(b, srv)
		benchmarkAllow(b, pinger{c}, nil)
	})
}

// pinger answers Allow with a PING: the round trip without the script.
type pinger struct{ c *redis.Client }

func (p pinger) Allow(ctx context.Context, _ string) (bool, time.Duration) {
	return p.c.Ping(ctx).Err() == nil, 0
}

func benchmarkAllow(b *testing.B, l limiter, env *redisEnv) {
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user_%d", i)
	}
	ctx := context.Background()
	l.Allow(ctx, "warmup") // the first connection is not what a checkout pays

	// The durations are stored in slices made before the timer starts, so
	// that B/op and allocs/op are the limiter's alone.
	b.Run("serial", func(b *testing.B) {
		took := make([]time.Duration, b.N)
		failedBefore := failedOpen(b, env)
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			l.Allow(ctx, users[i%len(users)])
			took[i] = time.Since(start)
		}
		b.StopTimer()
		reportPercentiles(b, took, failedOpen(b, env)-failedBefore)
	})
	b.Run("parallel", func(b *testing.B) {
		// RunParallel starts GOMAXPROCS goroutines; each takes a slice.
		slots := make([][]time.Duration, runtime.GOMAXPROCS(0))
		for i := range slots {
			slots[i] = make([]time.Duration, 0, b.N)
		}
		var next atomic.Int32
		failedBefore := failedOpen(b, env)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			slot := next.Add(1) - 1
			mine := slots[slot] // never outgrows its b.N capacity
			for i := 0; pb.Next(); i++ {
				start := time.Now()
				l.Allow(ctx, users[i%len(users)])
				mine = append(mine, time.Since(start))
			}
			slots[slot] = mine
		})
		b.StopTimer()
		reportPercentiles(b, slices.Concat(slots...), failedOpen(b, env)-failedBefore)
	})
}

// failedOpen reads the Redis limiter's error counter; 0 for the others.
func failedOpen(b *testing.B, env *redisEnv) float64 {
	if env == nil {
		return 0
	}
	return env.errorCount(b)
}

// reportPercentiles adds the 50th and 99th percentiles of took, in µs, and
// the checks that failed open, to the benchmark's line.
func reportPercentiles(b *testing.B, took []time.Duration, failed float64) {
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	at := func(p float64) float64 {
		return float64(took[int(p*float64(len(took)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(failed, "failed-open")
}
