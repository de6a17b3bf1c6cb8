package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValueAndSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"a", "b"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"}, []string{"a"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	reg.MustRegister(c, h, g)
	c.WithLabelValues("x", "y").Add(3)
	c.WithLabelValues("x", "z").Inc()
	c.WithLabelValues("w", "y").Add(5)
	h.WithLabelValues("x").Observe(1)
	h.WithLabelValues("x").Observe(2)
	h.WithLabelValues("w").Observe(3)
	g.Set(7)

	type reader func(testing.TB, prometheus.Gatherer, string, map[string]string) float64
	tests := []struct {
		fn     string
		read   reader
		name   string
		labels map[string]string
		want   float64
	}{
		{"Value", Value, "c_total", map[string]string{"a": "x", "b": "y"}, 3},
		{"Value", Value, "c_total", map[string]string{"a": "x", "b": "z"}, 1},
		{"Value", Value, "c_total", map[string]string{"a": "x", "b": "nope"}, 0},
		{"Value", Value, "c_total", map[string]string{"a": "x"}, 0}, // a subset of the labels is not the series
		{"Value", Value, "h_seconds", map[string]string{"a": "x"}, 2},
		{"Value", Value, "g", nil, 7},

		{"Sum", Sum, "c_total", map[string]string{"a": "x"}, 4},              // x,y + x,z
		{"Sum", Sum, "c_total", map[string]string{"b": "y"}, 8},              // x,y + w,y
		{"Sum", Sum, "c_total", map[string]string{"a": "x", "b": "y"}, 3},    // the whole label set: that series alone
		{"Sum", Sum, "c_total", nil, 9},                                      // no labels: every series
		{"Sum", Sum, "c_total", map[string]string{}, 9},                      // same for an empty map
		{"Sum", Sum, "c_total", map[string]string{"a": "nope"}, 0},           // no series matches
		{"Sum", Sum, "c_total", map[string]string{"a": "x", "zz": "x"}, 0},   // a label no series has
		{"Sum", Sum, "c_total", map[string]string{"a": "x", "b": "nope"}, 0}, // one label matches, one does not
		{"Sum", Sum, "h_seconds", nil, 3},                                    // histograms: sample counts
		{"Sum", Sum, "g", nil, 7},
	}
	for _, tt := range tests {
		if got := tt.read(t, reg, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s(%s, %v) = %v, want %v", tt.fn, tt.name, tt.labels, got, tt.want)
		}
	}
}
