package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"a", "b"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	reg.MustRegister(c, h, g)
	c.WithLabelValues("x", "y").Add(3)
	c.WithLabelValues("x", "z").Inc()
	h.Observe(1)
	h.Observe(2)
	g.Set(7)

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"c_total", map[string]string{"a": "x", "b": "y"}, 3},
		{"c_total", map[string]string{"a": "x", "b": "z"}, 1},
		{"c_total", map[string]string{"a": "x", "b": "nope"}, 0},
		{"c_total", map[string]string{"a": "x"}, 0}, // a subset of the labels is not the series
		{"h_seconds", nil, 2},
		{"g", nil, 7},
	}
	for _, tt := range tests {
		if got := Value(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("Value(%s, %v) = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
