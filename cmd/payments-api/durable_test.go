package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/payments-api/internal/config"
	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/fakeclerk"
	"github.com/acme/payments-api/internal/fakenext"
	"github.com/acme/payments-api/internal/forward"
	"github.com/acme/payments-api/internal/logtest"
	"github.com/acme/payments-api/internal/pgtest"
	"github.com/acme/payments-api/internal/polltest"
	"github.com/acme/payments-api/internal/postgres"
)

// newTestDurable wires durable delivery to the database at dsn and a Next.js
// stand-in, with short waits.
func newTestDurable(t *testing.T, dsn string) (*durable, *logtest.Buffer) {
	t.Helper()
	u, err := config.DatabaseURL(func(k string) string {
		if k == "DATABASE_URL" {
			return dsn
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{DatabaseURL: u, DeliveryWorkers: 2, DeliveryMaxAttempts: 3, DeliveryRetention: time.Hour,
		ForwardTimeout: 5 * time.Second, ShutdownTimeout: 5 * time.Second}
	srv := httptest.NewServer(fakenext.New(testNextSecret + "-padding-to-32-chars"))
	t.Cleanup(srv.Close)
	next, _ := url.Parse(srv.URL)
	fwd, err := forward.New(forward.Options{URL: next, Secret: testNextSecret + "-padding-to-32-chars"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	d, err := newDurable(context.Background(), cfg, fwd, nil, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d.retryMax, d.recheck = 200*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return d, logs
}

func accepts(t *testing.T, d *durable) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := d.queue.Enqueue(ctx, "evt_probe", "invoice.paid", []byte(`{"id":"evt_probe"}`))
	return err == nil
}

// TestDurableStartRules: a current schema starts the workers; a schema
// behind stops the service with a line naming `payments-api migrate`.
func TestDurableStartRules(t *testing.T) {
	t.Parallel()
	t.Run("current", func(t *testing.T) {
		t.Parallel()
		d, _ := newTestDurable(t, migratedDSN(t))
		if err := d.start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !accepts(t, d) {
			t.Error("the queue does not take events")
		}
	})
	t.Run("behind", func(t *testing.T) {
		t.Parallel()
		d, logs := newTestDurable(t, pgtest.Database(t))
		if err := d.start(context.Background()); !errors.Is(err, errSchemaBehind) {
			t.Fatalf("start = %v, want errSchemaBehind", err)
		}
		if !strings.Contains(logs.String(), "run `payments-api migrate`") {
			t.Error("no line says to run payments-api migrate")
		}
	})
}

// TestDurableWaitsForTheDatabase: the service starts without the database,
// webhooks are refused meanwhile; when it answers with its schema behind, an
// error line says to migrate and events are still refused; once migrated,
// durable delivery starts without a restart.
func TestDurableWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	dsn := c.URL("postgres")
	c.Stop(t)
	d, logs := newTestDurable(t, dsn)

	start := time.Now()
	if err := d.start(context.Background()); err != nil {
		t.Fatalf("start without a database = %v, want nil", err)
	}
	if took := time.Since(start); took > firstCheckTimeout+5*time.Second {
		t.Errorf("start took %v", took)
	}
	if _, err := d.queue.Enqueue(context.Background(), "evt_1", "invoice.paid", []byte(`{}`)); !errors.Is(err, delivery.ErrNotStarted) {
		t.Errorf("Enqueue while the database is down = %v, want ErrNotStarted", err)
	}
	if !strings.Contains(logs.String(), "the database does not answer") {
		t.Error("no warning that the database does not answer")
	}

	c.Restart(t)
	polltest.Within(t, time.Minute, "the schema is reported behind", func() bool { return strings.Contains(logs.String(), "its schema is behind") })
	if accepts(t, d) {
		t.Fatal("the queue takes events on a schema that is behind")
	}
	if err := migrate(context.Background(), dsn, reachTimeout, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	polltest.Within(t, time.Minute, "durable delivery starts once migrated", func() bool { return accepts(t, d) })
}

// TestDurableStopWhileWaiting: stopping while the database is still down
// ends the wait and closes cleanly.
func TestDurableStopWhileWaiting(t *testing.T) {
	t.Parallel()
	d, _ := newTestDurable(t, deadDSN)
	if err := d.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.beginStop(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.stop(ctx); err != nil {
		t.Errorf("stop = %v", err)
	}
}

// TestRunDurable runs the service in durable mode through run: the webhook
// answers "queued" and the event reaches Next.js; the delivery metrics are
// exported; a checkout's customer is kept in the customers table; River UI is
// on ADMIN_ADDR behind basic auth and nowhere on the public listener.
func TestRunDurable(t *testing.T) {
	t.Parallel()
	const adminPass = "correct-horse-battery-staple"
	dsn := migratedDSN(t)
	st := startStack(t, map[string]string{
		"DATABASE_URL":   dsn,
		"ADMIN_ADDR":     "127.0.0.1:0",
		"ADMIN_USERNAME": "ops",
		"ADMIN_PASSWORD": adminPass,
	})
	base := st.svc.url
	waitReady(t, base)

	body, sig := signedEvent(t, "evt_durable_run", "checkout.session.completed")
	resp, err := postWebhook(context.Background(), base, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(answer)) != `{"received":true,"queued":true}` {
		t.Fatalf("webhook = %d %s, want 200 queued", resp.StatusCode, answer)
	}
	polltest.Within(t, time.Minute, "delivered", func() bool { return len(st.next.Processed()) == 1 })
	polltest.Within(t, time.Minute, "the delivery metrics", func() bool {
		_, m := get(t, st.svc.metricsURL+"/metrics")
		return strings.Contains(m, `payments_api_delivery_attempts_total{outcome="delivered"} 1`) &&
			strings.Contains(m, `payments_api_delivery_jobs{state="completed"} 1`) &&
			strings.Contains(m, "payments_api_delivery_oldest_pending_seconds 0")
	})

	token, err := st.clerk.Mint(fakeclerk.Token{Subject: "user_durable", AuthorizedParty: testOrigin})
	if err != nil {
		t.Fatal(err)
	}
	resp = postCheckout(t, base, token, "application/json", `{"price_id":"price_1MoBy5LkdIwHu7ixZhnattbh"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("checkout = %d", resp.StatusCode)
	}
	pool, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if id, err := postgres.NewCustomers(pool).Customer(context.Background(), "user_durable"); err != nil || !strings.HasPrefix(id, "cus_") {
		t.Errorf("customers table for user_durable = %q, %v; want the checkout's customer", id, err)
	}

	line := st.svc.stdout.First(t, "msg", "listening")
	admin := "http://" + line["admin_addr"].(string)
	for _, c := range []struct {
		user, pass string
		want       int
	}{{"", "", http.StatusUnauthorized}, {"ops", "wrong-password-0000", http.StatusUnauthorized}, {"ops", adminPass, http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, admin+"/api/jobs?state=completed", nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("admin as %q = %d, want %d", c.user, resp.StatusCode, c.want)
		}
		if c.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("admin 401 without a Basic challenge")
		}
		if c.want == http.StatusOK && !strings.Contains(string(b), "evt_durable_run") {
			t.Errorf("River UI's job list lacks the event: %.200s", b)
		}
	}
	if code, _ := get(t, base+"/api/jobs"); code != http.StatusNotFound {
		t.Errorf("River UI's API on the public listener = %d, want 404", code)
	}
	if strings.Contains(st.svc.stdout.String(), adminPass) {
		t.Error("the admin password is in the log")
	}
}

// TestRunDurableDatabaseDown: with DATABASE_URL set and the database down,
// the service starts and is ready, a checkout still succeeds (the customer is
// found or created with Stripe), and webhooks answer 503 with Retry-After.
func TestRunDurableDatabaseDown(t *testing.T) {
	t.Parallel()
	c, dsn := migratedCluster(t)
	c.Stop(t)
	st := startStack(t, map[string]string{"DATABASE_URL": dsn})
	base := st.svc.url
	waitReady(t, base)

	token, err := st.clerk.Mint(fakeclerk.Token{Subject: "user_db_down", AuthorizedParty: testOrigin})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp := postCheckout(t, base, token, "application/json", `{"price_id":"price_1MoBy5LkdIwHu7ixZhnattbh"}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("checkout with the database down = %d, want 200", resp.StatusCode)
	}
	t.Logf("checkout took %v", time.Since(start).Round(time.Millisecond))

	body, sig := signedEvent(t, "evt_db_down", "checkout.session.completed")
	resp, err = postWebhook(context.Background(), base, body, sig)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("webhook with the database down = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
