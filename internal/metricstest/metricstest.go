// Package metricstest reads metric values out of a Prometheus registry, for
// tests that assert what the service counted.
package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Value returns the value of the series of metric name whose labels are exactly
// labels: a counter's or gauge's value, or a histogram's sample count. A series
// not (yet) recorded is 0; a metric family that is not registered at all fails
// the test, because then every assertion on it would be vacuous.
func Value(tb testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	tb.Helper()
	for _, m := range family(tb, g, name).GetMetric() {
		if len(m.GetLabel()) == len(labels) && hasLabels(m, labels) {
			return value(m)
		}
	}
	return 0
}

// Sum adds up the values (as Value reads them) of every series of metric name
// whose labels include labels, whatever its other labels are: nil or an empty
// map sums the whole metric. No matching series is 0; a metric family that is
// not registered at all fails the test, as with Value.
func Sum(tb testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	tb.Helper()
	var total float64
	for _, m := range family(tb, g, name).GetMetric() {
		if hasLabels(m, labels) {
			total += value(m)
		}
	}
	return total
}

// family gathers g and returns the family called name, failing the test if
// there is none.
func family(tb testing.TB, g prometheus.Gatherer, name string) *dto.MetricFamily {
	tb.Helper()
	families, err := g.Gather()
	if err != nil {
		tb.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	tb.Fatalf("metric %s is not registered", name)
	return nil
}

// hasLabels reports whether every label in want is on m with the same value.
func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}

// value is a counter's, gauge's or untyped metric's value, or a histogram's
// sample count.
func value(m *dto.Metric) float64 {
	switch {
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	default:
		return m.GetCounter().GetValue()
	}
}
