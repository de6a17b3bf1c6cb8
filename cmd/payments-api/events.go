package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acme/payments-api/internal/delivery"
)

const eventsUsage = `usage:
  payments-api events list [--state STATE[,STATE…]] [--type TYPE] [--limit N] [--json]
  payments-api events retry EVENT_ID…
  payments-api events retry --discarded
`

// events runs `payments-api events list|retry`: the delivery queue as an
// operator sees it, and the replay of events. Results go to stdout, the log
// to stderr. Usage mistakes are exit status 2, a database that cannot be
// reached or a failed operation 1, and so is a retry of an id not found.
func events(ctx context.Context, args []string, dsn string, reach time.Duration, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, eventsUsage)
		return exitError{code: 2}
	}
	var run func(context.Context, *delivery.Queue, io.Writer) error
	switch args[0] {
	case "list":
		p, asJSON, err := parseList(args[1:], stderr)
		if err != nil {
			return err
		}
		run = func(ctx context.Context, q *delivery.Queue, w io.Writer) error { return list(ctx, q, p, asJSON, w) }
	case "retry":
		ids, discarded, err := parseRetry(args[1:], stderr)
		if err != nil {
			return err
		}
		run = func(ctx context.Context, q *delivery.Queue, w io.Writer) error {
			return retry(ctx, q, ids, discarded, w)
		}
	default:
		fmt.Fprintf(stderr, "payments-api events: unknown command %q\n%s", args[0], eventsUsage)
		return exitError{code: 2}
	}

	log := subcommandLogger(stderr)
	pool, err := openReachable(ctx, dsn, "payments-api events", reach, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	q, err := delivery.New(pool, delivery.Options{Logger: log})
	if err != nil {
		return err
	}
	if err := run(ctx, q, stdout); err != nil {
		var exit exitError
		if !errors.As(err, &exit) {
			log.Error("events "+args[0]+" failed", slog.Any("error", err))
			return exitError{code: 1}
		}
		return err
	}
	return nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, eventsUsage) }
	return fs
}

func parseList(args []string, stderr io.Writer) (delivery.ListParams, bool, error) {
	fs := newFlagSet("events list", stderr)
	state := fs.String("state", "", "keep events in these states (comma list): "+strings.Join(delivery.States(), ", "))
	typ := fs.String("type", "", "keep events of this type")
	limit := fs.Int("limit", delivery.DefaultListLimit, fmt.Sprintf("show at most N events, newest first (1–%d)", delivery.MaxListLimit))
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := fs.Parse(args); err != nil {
		return delivery.ListParams{}, false, exitError{code: 2}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "payments-api events list: unexpected argument %q\n%s", fs.Arg(0), eventsUsage)
		return delivery.ListParams{}, false, exitError{code: 2}
	}
	p := delivery.ListParams{Type: *typ, Limit: *limit}
	if *state != "" {
		p.States = strings.Split(*state, ",")
	}
	for _, s := range p.States {
		if !slices.Contains(delivery.States(), s) {
			fmt.Fprintf(stderr, "payments-api events list: --state %q is not one of %s\n", s, strings.Join(delivery.States(), ", "))
			return delivery.ListParams{}, false, exitError{code: 2}
		}
	}
	if p.Limit < 1 || p.Limit > delivery.MaxListLimit {
		fmt.Fprintf(stderr, "payments-api events list: --limit must be from 1 to %d\n", delivery.MaxListLimit)
		return delivery.ListParams{}, false, exitError{code: 2}
	}
	return p, *asJSON, nil
}

func parseRetry(args []string, stderr io.Writer) (ids []string, discarded bool, err error) {
	fs := newFlagSet("events retry", stderr)
	fs.BoolVar(&discarded, "discarded", false, "queue every discarded event again")
	if err := fs.Parse(args); err != nil {
		return nil, false, exitError{code: 2}
	}
	ids = fs.Args()
	if discarded == (len(ids) > 0) {
		fmt.Fprintf(stderr, "payments-api events retry: give event ids or --discarded, not both or neither\n%s", eventsUsage)
		return nil, false, exitError{code: 2}
	}
	return ids, discarded, nil
}

// list prints the events as a table, or as JSON lines.
func list(ctx context.Context, q *delivery.Queue, p delivery.ListParams, asJSON bool, w io.Writer) error {
	evs, err := q.List(ctx, p)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for _, e := range evs {
			if err := enc.Encode(jsonEvent(e)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT ID\tTYPE\tSTATE\tATTEMPTS\tLAST ERROR\tCREATED\tNEXT ATTEMPT")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.EventID, e.Type, e.State, e.Attempts,
			orDash(truncate(e.LastError, 60)), e.CreatedAt.UTC().Format(time.RFC3339), orDash(timeText(e.NextAttemptAt)))
	}
	return tw.Flush()
}

// eventJSON is one line of `events list --json`: every key always present,
// null when there is nothing to say.
type eventJSON struct {
	EventID       string  `json:"event_id"`
	Type          string  `json:"type"`
	State         string  `json:"state"`
	Attempts      int     `json:"attempts"`
	LastError     *string `json:"last_error"`
	CreatedAt     string  `json:"created_at"`
	NextAttemptAt *string `json:"next_attempt_at"`
}

func jsonEvent(e delivery.Event) eventJSON {
	out := eventJSON{
		EventID:   e.EventID,
		Type:      e.Type,
		State:     e.State,
		Attempts:  e.Attempts,
		CreatedAt: e.CreatedAt.UTC().Format(time.RFC3339),
	}
	if e.LastError != "" {
		out.LastError = &e.LastError
	}
	if t := timeText(e.NextAttemptAt); t != "" {
		out.NextAttemptAt = &t
	}
	return out
}

func timeText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// truncate shortens s to n runes for a table cell; --json has it whole.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// retry queues the events again and prints each id with what was done. An id
// not found makes the exit status 1, after every id was tried.
func retry(ctx context.Context, q *delivery.Queue, ids []string, discarded bool, w io.Writer) error {
	var (
		res []delivery.RetryResult
		err error
	)
	if discarded {
		res, err = q.RetryDiscarded(ctx)
	} else {
		res, err = q.Retry(ctx, ids)
	}
	notFound := 0
	for _, r := range res {
		fmt.Fprintln(w, r)
		if r.Action == delivery.RetryNotFound {
			notFound++
		}
	}
	if err != nil {
		return err
	}
	if discarded && len(res) == 0 {
		fmt.Fprintln(w, "no discarded events")
	}
	if notFound > 0 {
		return exitError{code: 1}
	}
	return nil
}
