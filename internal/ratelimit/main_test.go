package ratelimit

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain keeps go-redis' own lines (one per failed dial while a test has
// stopped Redis) out of the test output; the limiter's warnings say the same
// once, and the test that looks at those lines routes them itself.
func TestMain(m *testing.M) {
	RouteClientLogs(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
