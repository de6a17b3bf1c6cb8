package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Limits of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 10_000 // River's bound on one page
)

// retryPage is how many discarded events RetryDiscarded reads at a time.
const retryPage = 1000

// Event is one event in the queue, as `payments-api events list` shows it.
type Event struct {
	EventID  string `json:"event_id"`
	Type     string `json:"type"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// LastError is the error of the latest failed attempt, "" when none failed.
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
	// NextAttemptAt is when the event will be tried next; nil when it is not
	// waiting for an attempt (running, delivered, discarded, cancelled).
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// ListParams selects the events List returns.
type ListParams struct {
	// States keeps events in these River states (all when empty).
	States []string
	// Type keeps events of this type (all when empty).
	Type string
	// Limit is the most events returned (DefaultListLimit when zero, at most
	// MaxListLimit).
	Limit int
}

// States returns River's job states, the values ListParams.States accepts.
func States() []string {
	var out []string
	for _, s := range rivertype.JobStates() {
		out = append(out, string(s))
	}
	return out
}

// List returns the queue's events matching p, newest first.
func (q *Queue) List(ctx context.Context, p ListParams) ([]Event, error) {
	limit := p.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return nil, fmt.Errorf("delivery: the limit must be from 1 to %d", MaxListLimit)
	}
	params := river.NewJobListParams().
		Kinds(Kind).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).
		First(limit)
	if len(p.States) > 0 {
		states := make([]rivertype.JobState, 0, len(p.States))
		for _, s := range p.States {
			if !slices.Contains(States(), s) {
				return nil, fmt.Errorf("delivery: unknown state %q (known: %s)", s, strings.Join(States(), ", "))
			}
			states = append(states, rivertype.JobState(s))
		}
		params = params.States(states...)
	}
	if p.Type != "" {
		params = whereArgs(params, EventArgs{Type: p.Type})
	}
	res, err := q.client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("delivery: listing events: %w", err)
	}
	events := make([]Event, 0, len(res.Jobs))
	for _, job := range res.Jobs {
		e, err := toEvent(job)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, nil
}

// whereArgs keeps jobs whose args contain the non-empty fields of match
// (event id or type), with jsonb containment, which River's GIN index on args
// answers without a scan.
func whereArgs(params *river.JobListParams, match EventArgs) *river.JobListParams {
	frag := map[string]string{}
	if match.EventID != "" {
		frag["event_id"] = match.EventID
	}
	if match.Type != "" {
		frag["type"] = match.Type
	}
	b, _ := json.Marshal(frag) // a map of strings always encodes
	return params.Where("args @> @args_fragment::jsonb", river.NamedArgs{"args_fragment": string(b)})
}

func toEvent(job *rivertype.JobRow) (Event, error) {
	var args EventArgs
	if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
		return Event{}, fmt.Errorf("delivery: job %d has unreadable args: %w", job.ID, err)
	}
	e := Event{
		EventID:   args.EventID,
		Type:      args.Type,
		State:     string(job.State),
		Attempts:  job.Attempt,
		CreatedAt: job.CreatedAt,
	}
	if n := len(job.Errors); n > 0 {
		e.LastError = job.Errors[n-1].Error
	}
	switch job.State {
	case rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStateRetryable, rivertype.JobStatePending:
		at := job.ScheduledAt
		e.NextAttemptAt = &at
	}
	return e, nil
}

// Retry actions, what RetryResult says was done.
const (
	RetryQueued        = "queued"         // made available now
	RetryAlreadyQueued = "already queued" // it was available already
	RetryRunning       = "running"        // being delivered right now: left alone
	RetryNotFound      = "not found"      // no such event (never queued, or removed after its retention)
)

// RetryResult is what Retry did with one event.
type RetryResult struct {
	EventID string
	Action  string // one of the Retry… constants
	// Previous is the state the event was in, "" when it was not found.
	Previous string
}

func (r RetryResult) String() string {
	switch r.Action {
	case RetryQueued:
		return fmt.Sprintf("%s queued (was %s)", r.EventID, r.Previous)
	case RetryRunning:
		return r.EventID + " running now; left alone"
	default:
		return r.EventID + " " + r.Action
	}
}

// Retry queues the events eventIDs again now, whatever their state (a
// delivered one is delivered again, which an idempotent Next.js ignores),
// except one being delivered right now. An event that used its last attempt
// gets one more; if that fails it is discarded again at once.
func (q *Queue) Retry(ctx context.Context, eventIDs []string) ([]RetryResult, error) {
	results := make([]RetryResult, 0, len(eventIDs))
	for _, id := range eventIDs {
		res, err := q.client.JobList(ctx, whereArgs(river.NewJobListParams().Kinds(Kind).First(1), EventArgs{EventID: id}))
		if err != nil {
			return results, fmt.Errorf("delivery: finding event %s: %w", id, err)
		}
		if len(res.Jobs) == 0 {
			results = append(results, RetryResult{EventID: id, Action: RetryNotFound})
			continue
		}
		r, err := q.retry(ctx, id, res.Jobs[0])
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

// RetryDiscarded queues every discarded event again now (the dead letter,
// replayed), each once: one discarded again while this runs is not retried
// a second time.
func (q *Queue) RetryDiscarded(ctx context.Context) ([]RetryResult, error) {
	var results []RetryResult
	params := river.NewJobListParams().
		Kinds(Kind).
		States(rivertype.JobStateDiscarded).
		OrderBy(river.JobListOrderByID, river.SortOrderAsc).
		First(retryPage)
	for {
		res, err := q.client.JobList(ctx, params)
		if err != nil {
			return results, fmt.Errorf("delivery: listing discarded events: %w", err)
		}
		for _, job := range res.Jobs {
			var args EventArgs
			if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
				return results, fmt.Errorf("delivery: job %d has unreadable args: %w", job.ID, err)
			}
			r, err := q.retry(ctx, args.EventID, job)
			if err != nil {
				return results, err
			}
			results = append(results, r)
		}
		if len(res.Jobs) < retryPage {
			return results, nil
		}
		// Ids only grow: the next page starts after the last job seen.
		params = params.After(res.LastCursor)
	}
}

func (q *Queue) retry(ctx context.Context, eventID string, job *rivertype.JobRow) (RetryResult, error) {
	r := RetryResult{EventID: eventID, Previous: string(job.State)}
	switch job.State {
	case rivertype.JobStateRunning:
		r.Action = RetryRunning
		return r, nil
	case rivertype.JobStateAvailable:
		r.Action = RetryAlreadyQueued
		return r, nil
	}
	after, err := q.client.JobRetry(ctx, job.ID)
	if err != nil {
		return r, fmt.Errorf("delivery: queueing event %s again: %w", eventID, err)
	}
	switch after.State {
	case rivertype.JobStateAvailable:
		r.Action = RetryQueued
	case rivertype.JobStateRunning: // picked up between the list and the retry
		r.Action = RetryRunning
	default:
		return r, fmt.Errorf("delivery: queueing event %s again left it %s", eventID, after.State)
	}
	return r, nil
}
