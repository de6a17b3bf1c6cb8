package config

import (
	"strings"
	"testing"
)

// TestListenAddr covers the one-variable reader the healthcheck uses: it
// applies LISTEN_ADDR's rule and default, and ignores every other variable.
func TestListenAddr(t *testing.T) {
	tests := []struct {
		value, want, problem string
	}{
		{"", ":8001", ""},
		{"127.0.0.1:9000", "127.0.0.1:9000", ""},
		{"[::1]:9000", "[::1]:9000", ""},
		{" :9000 ", ":9000", ""},
		{"9000", "", `LISTEN_ADDR: "9000" is not a host:port address`},
		{":65536", "", "LISTEN_ADDR: \":65536\" has an invalid port"},
		{"off", "", `LISTEN_ADDR: "off" is not a host:port address`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			// Everything else is missing or wrong: none of it may matter.
			env := map[string]string{"LISTEN_ADDR": tt.value, "METRICS_ADDR": tt.value, "LOG_LEVEL": "loud"}
			got, err := ListenAddr(getenv(env))
			if tt.problem == "" {
				if err != nil || got != tt.want {
					t.Errorf("ListenAddr = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.problem) {
				t.Errorf("ListenAddr = %q, %v; want the problem %q", got, err, tt.problem)
			}
		})
	}
}
