package ratelimit

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// RouteClientLogs sends the lines the go-redis library logs by itself to log
// at debug level, instead of plain text on standard error. While Redis is
// down it would write a line per failed connection; the limiter's own warning
// already says so, once per WarnInterval. go-redis has one logger per process,
// so this changes process-wide state: call it once, from main.
func RouteClientLogs(log *slog.Logger) {
	redis.SetLogger(clientLogger{log})
}

type clientLogger struct{ log *slog.Logger }

func (l clientLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), slog.String("source", "go-redis"))
}
