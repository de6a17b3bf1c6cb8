package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/polltest"
	"github.com/acme/payments-api/internal/redistest"
)

// TestRedisRetryAfterIsRedisAnswer checks that a refusal passes on what Redis
// computed: asked directly right after, Redis gives the same wait, less the
// moment in between.
func TestRedisRetryAfterIsRedisAnswer(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	r := Rate{N: 5, Per: time.Hour}
	l := newRedisEnv(t, srv.URL(), r)

	take(t, l, "ada", r.N)
	ok, got := l.Allow(context.Background(), "ada")
	if ok {
		t.Fatalf("request %d allowed, want refused", r.N+1)
	}
	direct, err := redis_rate.NewLimiter(rawClient(t, srv)).Allow(context.Background(), keyPrefix+"ada",
		redis_rate.Limit{Rate: r.N, Burst: r.N, Period: r.Per})
	if err != nil {
		t.Fatal(err)
	}
	if direct.Allowed != 0 {
		t.Fatalf("Redis asked directly allowed %d, want 0: the limiter did not use its key", direct.Allowed)
	}
	if want := direct.RetryAfter; got < want || got > want+5*time.Second {
		t.Errorf("retry after %v, want Redis' answer %v (plus the moment in between)", got, want)
	}
	if want := r.Per / time.Duration(r.N); got > want {
		t.Errorf("retry after %v, longer than one interval %v", got, want)
	}
	if got := l.errorCount(t); got != 0 {
		t.Errorf("errors = %v, want 0", got)
	}
}

// TestRedisReplicasShareOneLimit runs two limiters, as two replicas would,
// on one Redis: together they allow N, not 2N, even all at once.
func TestRedisReplicasShareOneLimit(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	r := Rate{N: 5, Per: time.Hour}
	replicas := []*redisEnv{newRedisEnv(t, srv.URL(), r), newRedisEnv(t, srv.URL(), r)}

	var (
		wg      sync.WaitGroup
		allowed atomic.Int32
		perRep  [2]atomic.Int32
	)
	for i := range 40 {
		wg.Go(func() {
			if ok, _ := replicas[i%2].Allow(context.Background(), "ada"); ok {
				allowed.Add(1)
				perRep[i%2].Add(1)
			}
		})
	}
	wg.Wait()
	if got, want := int(allowed.Load()), r.N; got != want {
		t.Errorf("allowed %d of 40 across two replicas, want %d", got, want)
	}
	t.Logf("allowed per replica: %d and %d", perRep[0].Load(), perRep[1].Load())

	// Another user is unaffected, whichever replica they reach.
	for i := range r.N {
		if ok, d := replicas[i%2].Allow(context.Background(), "bob"); !ok {
			t.Fatalf("bob request %d refused (retry after %v)", i+1, d)
		}
	}
	for i, rep := range replicas {
		if ok, _ := rep.Allow(context.Background(), "bob"); ok {
			t.Errorf("replica %d allowed bob's request %d", i+1, r.N+1+i)
		}
		if got := rep.errorCount(t); got != 0 {
			t.Errorf("replica %d errors = %v, want 0", i+1, got)
		}
	}
}

// TestRedisDownFailsOpen stops Redis mid-traffic: every request is allowed and
// counted, one warning a minute is logged, and once Redis is back (empty, as
// after a crash) limits hold again.
func TestRedisDownFailsOpen(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	r := Rate{N: 3, Per: time.Hour}
	l := newRedisEnv(t, srv.URL(), r)
	take(t, l, "ada", r.N)
	if ok, _ := l.Allow(context.Background(), "ada"); ok {
		t.Fatal("limit not enforced before the fault")
	}

	srv.Stop()
	// More failures than go-redis' connection pool has room for (20 on two
	// cores), past which it stops dialling until a background probe, once a
	// second, gets through: the recovery below covers that too.
	const failures = 50
	for i := range failures {
		if ok, d := l.Allow(context.Background(), "ada"); !ok {
			t.Fatalf("request %d with Redis down refused (retry after %v), want allowed", i+1, d)
		}
	}
	if got := l.errorCount(t); got != failures {
		t.Errorf("errors = %v, want %d", got, failures)
	}
	warnings := l.log.Records(t, slog.LevelKey, slog.LevelWarn.String())
	if len(warnings) != 1 {
		t.Fatalf("%d warnings for %d failures within a second, want 1:\n%s", len(warnings), failures, l.log.String())
	}
	if w := warnings[0]; w["error"] == "" || w["failures_not_logged"] != 0.0 {
		t.Errorf("warning %v, want the error and failures_not_logged 0", w)
	}

	l.clock.Add(WarnInterval - time.Second)
	l.Allow(context.Background(), "ada")
	if got := len(l.log.Records(t, slog.LevelKey, slog.LevelWarn.String())); got != 1 {
		t.Fatalf("%d warnings a second before the interval ends, want 1", got)
	}
	l.clock.Add(time.Second)
	l.Allow(context.Background(), "ada")
	warnings = l.log.Records(t, slog.LevelKey, slog.LevelWarn.String())
	if len(warnings) != 2 {
		t.Fatalf("%d warnings once the interval is over, want 2", len(warnings))
	}
	if got, want := warnings[1]["failures_not_logged"], float64(failures); got != want {
		t.Errorf("second warning: failures_not_logged = %v, want %v", got, want)
	}

	srv.Restart()
	probes := 0
	polltest.Eventually(t, "a check answered by Redis after its restart", func() bool {
		before := l.errorCount(t)
		probes++
		l.Allow(context.Background(), fmt.Sprintf("probe_%d", probes))
		return l.errorCount(t) == before
	})
	t.Logf("Redis answered again after %d probes", probes)
	take(t, l, "ada", r.N) // Redis restarted empty: a fresh burst
	if ok, d := l.Allow(context.Background(), "ada"); ok || d <= 0 {
		t.Errorf("after recovery: request %d = %v, %v; want refused with a wait", r.N+1, ok, d)
	}
}

// TestRedisSlowFailsOpen checks that a Redis that does not answer costs a
// request the budget, not more: frozen Redis, and a server that accepts
// connections and never answers.
func TestRedisSlowFailsOpen(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	silent := silentServer(t)
	tests := []struct {
		name   string
		url    string
		freeze bool
	}{
		{"frozen redis-server", srv.URL(), true},
		{"accepts and never answers", "redis://" + silent + "/0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newRedisEnv(t, tt.url, Rate{N: 3, Per: time.Hour})
			if tt.freeze {
				take(t, l, "warmup", 1) // a pooled connection, which the freeze leaves hanging
				srv.Freeze()
				defer srv.Thaw()
			}
			l.budget = Budget
			// Twice: once on a pooled connection (frozen case) and once on a
			// new one whose handshake never completes.
			for i := range 2 {
				start := time.Now()
				ok, _ := allowWithin(t, l, 10*time.Second)
				took := time.Since(start)
				t.Logf("call %d: allowed=%v after %v", i+1, ok, took)
				if !ok {
					t.Errorf("call %d refused, want allowed", i+1)
				}
				if took < Budget {
					t.Errorf("call %d gave up after %v, before the %v budget: did it reach the server?", i+1, took, Budget)
				}
				// Generous for a loaded machine, and still well below go-redis'
				// own 3 s read timeout, which would rule without the budget.
				if took > 1500*time.Millisecond {
					t.Errorf("call %d took %v: the %v budget did not bound it", i+1, took, Budget)
				}
			}
			if got := l.errorCount(t); got != 2 {
				t.Errorf("errors = %v, want 2", got)
			}
		})
	}

	// Thawed, Redis answers again and limits hold. Another user than the
	// timed-out checks': Redis still runs those once it wakes up, so each may
	// count although it was let through.
	l := newRedisEnv(t, srv.URL(), Rate{N: 3, Per: time.Hour})
	take(t, l, "cyd", 3)
	if ok, _ := l.Allow(context.Background(), "cyd"); ok {
		t.Error("after thawing: request 4 allowed, want refused")
	}
}

// allowWithin calls Allow for user "ada" and fails the test if it does not
// return within limit, rather than hanging until the test binary's timeout.
func allowWithin(t *testing.T, l limiter, limit time.Duration) (bool, time.Duration) {
	t.Helper()
	type answer struct {
		ok bool
		d  time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		ok, d := l.Allow(context.Background(), "ada")
		done <- answer{ok, d}
	}()
	select {
	case a := <-done:
		return a.ok, a.d
	case <-time.After(limit):
		t.Fatalf("Allow did not return within %v", limit)
		return false, 0
	}
}

// silentServer accepts connections on loopback and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestRedisCallerGaveUp checks that a request whose client went away is not
// counted as a Redis failure.
func TestRedisCallerGaveUp(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	l := newRedisEnv(t, srv.URL(), Rate{N: 3, Per: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ok, _ := l.Allow(ctx, "ada"); !ok {
		t.Error("a cancelled request was refused")
	}
	if got := l.errorCount(t); got != 0 {
		t.Errorf("errors = %v, want 0: Redis did not fail", got)
	}
	if got := l.log.Records(t, slog.LevelKey, slog.LevelWarn.String()); len(got) != 0 {
		t.Errorf("warnings %v, want none", got)
	}
}

// TestRedisClosed checks that a closed limiter still never refuses.
func TestRedisClosed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	l := newRedisEnv(t, srv.URL(), Rate{N: 1, Per: time.Hour})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ok, _ := l.Allow(context.Background(), "ada"); !ok {
			t.Fatalf("request %d after Close refused", i+1)
		}
	}
	if got := l.errorCount(t); got != 3 {
		t.Errorf("errors = %v, want 3", got)
	}
}

// TestRedisPasswordNeverShown runs a Redis that requires a password through
// every path that writes a log line or an error: the password in the URL
// (right or wrong) never appears.
func TestRedisPasswordNeverShown(t *testing.T) {
	const password = "s3cret-Redis-passw0rd"
	srv := redistest.Start(t, redistest.Options{Password: password})
	clientLog := &logtest.Buffer{}
	RouteClientLogs(jsonLogger(clientLog))
	t.Cleanup(func() { RouteClientLogs(slog.New(slog.DiscardHandler)) }) // as TestMain left it

	right := newRedisEnv(t, srv.URL(), Rate{N: 2, Per: time.Hour})
	take(t, right, "ada", 2)
	if ok, _ := right.Allow(context.Background(), "ada"); ok {
		t.Fatal("with the right password: request 3 allowed, want refused (is Redis used at all?)")
	}

	const wrongPassword = "wr0ng-Redis-passw0rd"
	wrong := newRedisEnv(t, strings.Replace(srv.URL(), password, wrongPassword, 1), Rate{N: 2, Per: time.Hour})
	for range 3 {
		if ok, _ := wrong.Allow(context.Background(), "ada"); !ok {
			t.Fatal("with a wrong password: refused, want allowed (fail open)")
		}
	}
	if got := wrong.log.Records(t, slog.LevelKey, slog.LevelWarn.String()); len(got) != 1 || !strings.Contains(fmt.Sprint(got[0]["error"]), "WRONGPASS") {
		t.Errorf("with a wrong password: warnings %v, want one naming WRONGPASS", got)
	}

	srv.Stop()
	right.Allow(context.Background(), "ada")
	if got := right.log.Records(t, slog.LevelKey, slog.LevelWarn.String()); len(got) != 1 {
		t.Errorf("Redis down: %d warnings, want 1", len(got))
	}

	if got := clientLog.String(); !strings.Contains(got, "failed to dial") {
		t.Errorf("go-redis' own log = %q, want its dial failure at debug level", got)
	}

	var errs []string
	for _, bad := range []string{
		"redis://:" + password + "@127.0.0.1:6379/notanumber",
		"redis://:" + password + "@127.0.0.1:6379/0?unknown_option=1",
		"redis://:" + password + "@127.0.0.1:6379/0?dial_timeout=soon",
		"redis://:" + password + "%zz@127.0.0.1:6379/0",
		"redis://:" + password + "/x@127.0.0.1:6379/0",
		"redis://:" + password + "@127.0.0.1:port/0",
		"http://:" + password + "@127.0.0.1:6379/0",
		"redis://:" + password + "@[::1/0",
	} {
		_, err := NewRedisURL(bad, RedisOptions{Rate: Rate{N: 1, Per: time.Hour}})
		if err == nil {
			t.Errorf("NewRedisURL(%q) succeeded, want an error", bad)
			continue
		}
		errs = append(errs, err.Error())
	}
	t.Logf("URL errors:\n%s", strings.Join(errs, "\n"))

	for what, text := range map[string]string{
		"right password's log": right.log.String(),
		"wrong password's log": wrong.log.String(),
		"go-redis' own log":    clientLog.String(),
		"URL errors":           strings.Join(errs, "\n"),
	} {
		for _, secret := range []string{password, wrongPassword, "s3cret", "wr0ng"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains %q:\n%s", what, secret, text)
			}
		}
	}
}

// TestWarnerRedacts covers what go-redis never does today: an error that
// quotes the password is logged without it.
func TestWarnerRedacts(t *testing.T) {
	rec := &logtest.Buffer{}
	w := newWarner(jsonLogger(rec), nil, "hunter2")
	w.failed(context.Background(), fmt.Errorf("AUTH hunter2 refused"))
	if got := rec.String(); strings.Contains(got, "hunter2") || !strings.Contains(got, "AUTH [redacted] refused") {
		t.Errorf("logged %s, want the error with the password redacted", got)
	}
}

func TestNewRedisRefusesNonsense(t *testing.T) {
	client := &redis.Options{Addr: "127.0.0.1:6379"}
	rate := Rate{N: 10, Per: time.Minute}
	tests := []struct {
		name string
		o    RedisOptions
		want string
	}{
		{"no client options", RedisOptions{Rate: rate}, "no Redis client options"},
		{"no rate", RedisOptions{Client: client}, "rate 0 per 0s"},
		{"zero per period", RedisOptions{Client: client, Rate: Rate{Per: time.Minute}}, "rate 0 per 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewRedis(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewRedis = %v, %v; want an error containing %q", l, err, tt.want)
			}
		})
	}

	t.Run("metric registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		l, err := NewRedis(RedisOptions{Client: client, Rate: rate, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if l.budget != Budget {
			t.Errorf("budget = %v, want %v", l.budget, Budget)
		}
		if _, err := NewRedis(RedisOptions{Client: client, Rate: rate, Registerer: reg}); err == nil || !strings.Contains(err.Error(), "register") {
			t.Fatalf("second NewRedis on one registry: err = %v, want a registration error", err)
		}
	})
}

// TestClientOptions checks what the budget relies on, and that what the URL
// set explicitly is kept.
func TestClientOptions(t *testing.T) {
	in, err := ParseURL("rediss://user:pw@redis.example.com:6380/2?max_retries=4&client_name=billing")
	if err != nil {
		t.Fatal(err)
	}
	got := clientOptions(in)
	if !got.ContextTimeoutEnabled {
		t.Error("ContextTimeoutEnabled = false: the 100 ms budget would be ignored on reads")
	}
	if got.MaxRetries != 4 || got.ClientName != "billing" || got.DB != 2 || got.TLSConfig == nil || got.Addr != "redis.example.com:6380" {
		t.Errorf("URL settings lost: %+v", got)
	}
	if in.ContextTimeoutEnabled {
		t.Error("clientOptions changed its argument")
	}

	defaults := clientOptions(&redis.Options{Addr: "127.0.0.1:6379"})
	if defaults.MaxRetries != 1 || defaults.DialerRetries != 1 || defaults.ClientName != "payments-api" {
		t.Errorf("defaults: MaxRetries %d, DialerRetries %d, ClientName %q; want 1, 1, payments-api",
			defaults.MaxRetries, defaults.DialerRetries, defaults.ClientName)
	}
}
