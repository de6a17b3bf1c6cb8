// Package logtest captures what a logger or a child process writes, for tests
// that read it while other goroutines are still writing.
package logtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Buffer is an io.Writer that several goroutines may write to while a test
// reads what was written. The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the complete lines written so far, without their newlines. A
// last line still without its newline is left out: a child process's output
// arrives in chunks that may end mid-line, and half a line is not a record.
func (b *Buffer) Lines() []string {
	var lines []string
	for line := range strings.Lines(b.String()) {
		if s, ok := strings.CutSuffix(line, "\n"); ok {
			lines = append(lines, s)
		}
	}
	return lines
}

// Records decodes the complete lines written so far as JSON objects and
// returns, in order, those whose attributes include every key and value of kv
// (pairs, as slog takes them: "msg", "request", "route", "/x"). A line that is
// not a JSON object fails the test: a JSON logger writes nothing else, so a
// stray line is a fault to report, not to skip.
func (b *Buffer) Records(tb testing.TB, kv ...string) []map[string]any {
	tb.Helper()
	if len(kv)%2 != 0 {
		tb.Fatalf("logtest: Records wants key, value pairs, got %q", kv)
	}
	var out []map[string]any
	for _, line := range b.Lines() {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			tb.Fatalf("log line %q is not a JSON object: %v", line, err)
		}
		if matches(rec, kv) {
			out = append(out, rec)
		}
	}
	return out
}

// First returns the first record Records would return for kv, or nil when none
// was written yet.
func (b *Buffer) First(tb testing.TB, kv ...string) map[string]any {
	tb.Helper()
	if recs := b.Records(tb, kv...); len(recs) > 0 {
		return recs[0]
	}
	return nil
}

// matches reports whether rec has every key of kv with its value.
func matches(rec map[string]any, kv []string) bool {
	for i := 0; i < len(kv); i += 2 {
		if v, ok := rec[kv[i]].(string); !ok || v != kv[i+1] {
			return false
		}
	}
	return true
}
