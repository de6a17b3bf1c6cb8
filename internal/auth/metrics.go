package auth

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	outcomeSuccess = "success"
	outcomeError   = "error"
)

// metrics holds the counters, resolved per label once so that the request path
// does no label lookup.
type metrics struct {
	failures    map[Reason]prometheus.Counter
	refreshes   map[string]prometheus.Counter
	lastSuccess prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "payments_api_auth_failures_total",
		Help: "Requests refused by the Clerk token check, by reason.",
	}, []string{"reason"})
	refreshes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "payments_api_jwks_refreshes_total",
		Help: "Clerk JWKS fetches, by outcome (success, error).",
	}, []string{"outcome"})
	lastSuccess := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "payments_api_jwks_last_success_timestamp_seconds",
		Help: "Unix time of the last successful Clerk JWKS fetch.",
	})

	if reg != nil {
		for _, c := range []prometheus.Collector{failures, refreshes, lastSuccess} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("auth: register metrics: %w", err)
			}
		}
	}

	m := &metrics{
		failures:    make(map[Reason]prometheus.Counter),
		refreshes:   make(map[string]prometheus.Counter),
		lastSuccess: lastSuccess,
	}
	for _, r := range AllReasons() {
		m.failures[r] = failures.WithLabelValues(string(r))
	}
	for _, o := range []string{outcomeSuccess, outcomeError} {
		m.refreshes[o] = refreshes.WithLabelValues(o)
	}
	return m, nil
}
