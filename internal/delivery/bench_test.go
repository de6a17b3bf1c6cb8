package delivery_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/payments-api/internal/delivery"
	"github.com/acme/payments-api/internal/deliverytest"
	"github.com/acme/payments-api/internal/forward"
)

// instantNext is a receiver that answers 200 at once without verifying: the
// benchmarks measure the queue, not the receiver.
func instantNext(b *testing.B) (next *url.URL, received *atomic.Int64) {
	b.Helper()
	received = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
	}))
	b.Cleanup(srv.Close)
	next, _ = url.Parse(srv.URL) // httptest's URL always parses
	return next, received
}

func benchQueue(b *testing.B, dsn string, workers int, next *url.URL) *delivery.Queue {
	b.Helper()
	fwd, err := forward.New(forward.Options{URL: next, Secret: nextSecret})
	if err != nil {
		b.Fatal(err)
	}
	pool := openPool(b, dsn)
	q, err := delivery.New(pool, delivery.Options{Forwarder: fwd, Workers: workers})
	if err != nil {
		b.Fatal(err)
	}
	if err := q.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = q.Stop(b.Context()) })
	return q
}

// BenchmarkEnqueue measures the webhook's part in durable mode: one event
// committed to the queue (a transaction with River's unique insert), from
// parallel requests. It reports the 99th percentile beside the mean.
func BenchmarkEnqueue(b *testing.B) {
	next, _ := instantNext(b)
	q := benchQueue(b, migrated.Database(b), 10, next)
	body := event("evt_bench", "checkout.session.completed")
	var (
		seq       atomic.Int64
		latencies = make([]time.Duration, 0, b.N)
		lat       = make(chan time.Duration, 1024)
		done      = make(chan struct{})
	)
	go func() {
		for d := range lat {
			latencies = append(latencies, d)
		}
		close(done)
	}()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("evt_bench_%d", seq.Add(1))
			start := time.Now()
			if _, err := q.Enqueue(b.Context(), id, "checkout.session.completed", body); err != nil {
				b.Error(err)
				return
			}
			lat <- time.Since(start)
		}
	})
	b.StopTimer()
	close(lat)
	<-done
	slices.Sort(latencies)
	if len(latencies) > 0 {
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkDrain measures how fast a backlog of b.N events (an outage's worth)
// is delivered to a Next.js that answers at once, with the default 10 workers.
// Run it with -benchtime=50000x for the figure in the README.
func BenchmarkDrain(b *testing.B) {
	next, received := instantNext(b)
	dsn := migrated.Database(b)
	if err := deliverytest.Backlog(b.Context(), dsn, b.N); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	benchQueue(b, dsn, delivery.DefaultWorkers, next)
	for received.Load() < int64(b.N) {
		time.Sleep(time.Millisecond) // polling a counter
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
