package config

import (
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// loader reads variables and collects problems instead of stopping at the first.
type loader struct {
	getenv   func(string) string
	problems Problems
}

// fail records a problem with the variable name; the message completes a
// sentence about it and never quotes a secret.
func (l *loader) fail(name, format string, args ...any) {
	l.problems = append(l.problems, name+": "+fmt.Sprintf(format, args...))
}

// set reports whether the variable has a value (an empty one counts as unset).
func (l *loader) set(name string) bool { return l.get(name, "") != "" }

// get returns the variable's value without surrounding space, or def when it
// is unset or empty.
func (l *loader) get(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

// logLevel reads a slog level by name.
func (l *loader) logLevel(name string) slog.Level {
	switch v := strings.ToLower(l.get(name, "info")); v {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		l.fail(name, "unknown level %q (want debug, info, warn or error)", v)
		return slog.LevelInfo
	}
}

// oneOf reads one of the allowed words, in any case.
func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(l.get(name, def))
	if !slices.Contains(allowed, v) {
		l.fail(name, "unknown value %q (want %s)", v, strings.Join(allowed, " or "))
	}
	return v
}

// list reads a comma list, items trimmed, empty items and repeats dropped.
func (l *loader) list(name, def string) []string {
	var out []string
	for _, item := range strings.Split(l.get(name, def), ",") {
		if item = strings.TrimSpace(item); item != "" && !slices.Contains(out, item) {
			out = append(out, item)
		}
	}
	return out
}

// duration reads a Go duration of at least min (0: not negative; more: positive).
func (l *loader) duration(name string, def, min time.Duration) time.Duration {
	v := l.get(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		l.fail(name, "%q is not a duration (e.g. 5s, 250ms, 1m)", v)
		return def
	}
	if d < min {
		if min == 0 {
			l.fail(name, "must not be negative")
		} else {
			l.fail(name, "must be positive")
		}
		return def
	}
	return d
}

// boolean reads true or false (also 1/0, t/f, in any case).
func (l *loader) boolean(name string, def bool) bool {
	v := l.get(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		l.fail(name, "%q is not a boolean (want true or false)", v)
		return def
	}
	return b
}

// intRange reads a whole number within [min, max].
func (l *loader) intRange(name string, def, min, max int) int {
	v := l.get(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		l.fail(name, "%q is not a whole number (want %d to %d)", v, min, max)
		return def
	}
	if n < min || n > max {
		l.fail(name, "must be between %d and %d (got %d)", min, max, n)
		return def
	}
	return n
}

var (
	portalConfigRe = regexp.MustCompile(`^bpc_[A-Za-z0-9]+$`)
	priceIDRe      = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	eventTypeRe    = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)
)

// patternList reads a comma list that must not be empty and whose every item
// matches re; empty and bad are the problems to report (bad gets the item).
func (l *loader) patternList(name, def string, re *regexp.Regexp, empty, bad string) []string {
	items := l.list(name, def)
	if len(items) == 0 {
		l.fail(name, "%s", empty)
		return nil
	}
	for _, item := range items {
		if !re.MatchString(item) {
			l.fail(name, bad, item)
			return nil
		}
	}
	return items
}

// pattern reads an optional value that must match re when set; bad is the
// problem to report.
func (l *loader) pattern(name string, re *regexp.Regexp, bad string) string {
	v := l.get(name, "")
	if v != "" && !re.MatchString(v) {
		l.fail(name, "%s", bad)
		return ""
	}
	return v
}
