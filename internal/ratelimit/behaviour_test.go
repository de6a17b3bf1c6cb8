package ratelimit

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/payments-api/internal/redistest"
)

// subject is one limiter implementation under the shared table.
type subject struct {
	name string
	// start returns a fresh limiter at rate r, and a function that moves its
	// clock forward by d.
	start func(t *testing.T, r Rate) (l limiter, advance func(d time.Duration))
	// slack is how much shorter than exact a retry-after may be: Redis' own
	// clock runs on while the test runs.
	slack time.Duration
}

var subjects = []subject{
	{
		name: "memory",
		start: func(t *testing.T, r Rate) (limiter, func(time.Duration)) {
			clk := newClock()
			m, err := NewMemory(MemoryOptions{Rate: r, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			return m, clk.Add
		},
	},
	{
		name: "redis",
		start: func(t *testing.T, r Rate) (limiter, func(time.Duration)) {
			srv := redistest.Start(t, redistest.Options{})
			raw := rawClient(t, srv)
			advance := func(d time.Duration) { shiftTime(t, raw, d) }
			return newRedisEnv(t, srv.URL(), r), advance
		},
		slack: 5 * time.Second,
	},
}

// shiftTime makes Redis' limiter state d older, which is what d passing on
// Redis' clock does to it: GCRA keeps one theoretical arrival time per key,
// in seconds, and compares it with Redis' TIME.
func shiftTime(t *testing.T, c *redis.Client, d time.Duration) {
	t.Helper()
	const script = `
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
  local tat = tonumber(redis.call('GET', k))
  redis.call('SET', k, string.format('%.6f', tat - tonumber(ARGV[2])), 'KEEPTTL')
end`
	if err := c.Eval(context.Background(), script, nil, "rate:"+keyPrefix+"*", d.Seconds()).Err(); err != nil && err != redis.Nil {
		t.Fatalf("shifting the limiter's time by %v: %v", d, err)
	}
}

// step is one request in a behaviour: after the clock moved by after, user
// asks; a refusal must say retry.
type step struct {
	after time.Duration
	user  string
	ok    bool
	retry time.Duration
}

func allowed(user string, n int) []step {
	s := make([]step, n)
	for i := range s {
		s[i] = step{user: user, ok: true}
	}
	return s
}

func allowedAfter(after time.Duration, user string) []step {
	return []step{{after: after, user: user, ok: true}}
}

func refused(after time.Duration, user string, retry time.Duration) []step {
	return []step{{after: after, user: user, retry: retry}}
}

// TestBehaviours runs one table of behaviours against both limiters: they
// must agree, so that turning REDIS_URL on changes where the limit lives,
// not what it is. The rate is 3 per hour: one request earned back every
// 20 minutes, long enough that Redis' clock moving on during a test (the
// slack) never changes an answer.
func TestBehaviours(t *testing.T) {
	r := Rate{N: 3, Per: time.Hour}
	const every = 20 * time.Minute
	tests := []struct {
		name  string
		steps []step
	}{
		{"a burst of N, then refused until one is earned", slices.Concat(
			allowed("ada", 3),
			refused(0, "ada", every),
		)},
		{"one earned back every period/N", slices.Concat(
			allowed("ada", 3),
			allowedAfter(every, "ada"),
			refused(0, "ada", every),
			refused(every-10*time.Second, "ada", 10*time.Second),
			allowedAfter(10*time.Second, "ada"),
			refused(0, "ada", every),
		)},
		{"refused requests take nothing", slices.Concat(
			allowed("ada", 3),
			refused(0, "ada", every),
			refused(5*time.Minute, "ada", 15*time.Minute),
			refused(5*time.Minute, "ada", 10*time.Minute),
			allowedAfter(10*time.Minute, "ada"),
			refused(0, "ada", every),
		)},
		{"the whole burst again after the period", slices.Concat(
			allowed("ada", 3),
			refused(0, "ada", every),
			allowedAfter(time.Hour, "ada"),
			allowed("ada", 2),
			refused(0, "ada", every),
		)},
		{"an idle user saves up no more than the burst", slices.Concat(
			allowed("ada", 1),
			allowedAfter(5*time.Hour, "ada"),
			allowed("ada", 2),
			refused(0, "ada", every),
		)},
		{"another user is unaffected", slices.Concat(
			allowed("ada", 3),
			refused(0, "ada", every),
			allowed("bob", 3),
			refused(0, "bob", every),
			refused(0, "ada", every),
		)},
	}
	for _, s := range subjects {
		t.Run(s.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					l, advance := s.start(t, r)
					for i, st := range tt.steps {
						if st.after > 0 {
							advance(st.after)
						}
						ok, retry := l.Allow(context.Background(), st.user)
						if got, want := describe(ok, retry, st.retry, s.slack), describe(st.ok, st.retry, st.retry, 0); got != want {
							t.Fatalf("step %d (%s after %v): got %s, want %s", i+1, st.user, st.after, got, want)
						}
					}
				})
			}
		})
	}
}

// describe renders an answer for comparison: "allowed", or "refused for
// <want>" when retry is within slack (and a millisecond of rounding) below
// want, else "refused for <retry>".
func describe(ok bool, retry, want, slack time.Duration) string {
	switch {
	case ok && retry == 0:
		return "allowed"
	case ok:
		return fmt.Sprintf("allowed with retry-after %v", retry)
	case retry <= want+time.Millisecond && retry >= want-slack-time.Millisecond:
		return fmt.Sprintf("refused for %v", want)
	default:
		return fmt.Sprintf("refused for %v", retry)
	}
}
