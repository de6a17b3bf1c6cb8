package config

import (
	"strings"
	"testing"
)

func TestDatabaseURL(t *testing.T) {
	tests := []struct {
		value, want, problem string
	}{
		{"postgres://app:s3cret@db.internal:5432/payments?sslmode=require", "postgres://db.internal:5432/payments", ""},
		{"postgresql://db/payments", "postgresql://db/payments", ""},
		{"postgres:///payments?host=/run/postgresql", "postgres:///payments", ""},
		{"", "", "DATABASE_URL: is required"},
		{"mysql://app:s3cret@db/payments", "", "DATABASE_URL: must be a postgres:// or postgresql://… URL"},
		{"postgres://app:p@ss#word@db/payments", "", "DATABASE_URL: is not a valid URL: percent-encode"},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			// Everything else is missing or wrong: none of it may matter.
			env := map[string]string{"DATABASE_URL": tt.value, "LOG_LEVEL": "loud", "LISTEN_ADDR": "nowhere"}
			got, err := DatabaseURL(getenv(env))
			if tt.problem == "" {
				if err != nil || got.String() != tt.want || got.Value() != tt.value {
					t.Errorf("DatabaseURL = %q (%q), %v; want %q", got, got.Value(), err, tt.want)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.problem) {
				t.Errorf("DatabaseURL = %q, %v; want the problem %q", got, err, tt.problem)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "ss#word") {
				t.Errorf("problem %q shows the password", err)
			}
		})
	}
}
