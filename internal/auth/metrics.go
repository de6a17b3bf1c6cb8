package auth

import (
	"errors"

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
		var err error
		if failures, err = register(reg, failures); err != nil {
			return nil, err
		}
		if refreshes, err = register(reg, refreshes); err != nil {
			return nil, err
		}
		if lastSuccess, err = register(reg, lastSuccess); err != nil {
			return nil, err
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

// register adds c to reg, or returns the collector already there, so that two
// Verifiers (a restart in tests, say) can share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, err
}
