// Package requestlog carries what one request's access-log line will say: the
// request id, and attributes and the error that handlers deep in the chain learn
// about (the authenticated user, the Stripe event id, the internal cause of a 5xx).
//
// The access-log middleware creates a Record per request with New and writes it
// out once at the end; everything else only adds to it through the context. That
// keeps logging in one place and keeps internal error text out of responses.
package requestlog

import (
	"context"
	"log/slog"
	"sync"
)

type ctxKey struct{}

// Record is the per-request log state. Its methods are safe for concurrent use,
// because a handler may hand the request context to goroutines.
type Record struct {
	id string

	mu    sync.Mutex
	route string
	attrs []slog.Attr
	err   error
}

// New returns a context carrying a fresh Record for the request with the given id.
func New(ctx context.Context, id string) (context.Context, *Record) {
	rec := &Record{id: id}
	return context.WithValue(ctx, ctxKey{}, rec), rec
}

// From returns the request's Record, or nil outside a request.
func From(ctx context.Context) *Record {
	rec, _ := ctx.Value(ctxKey{}).(*Record)
	return rec
}

// ID returns the request id carried by ctx, or "" outside a request.
func ID(ctx context.Context) string {
	if rec := From(ctx); rec != nil {
		return rec.id
	}
	return ""
}

// Add attaches attributes to the request's log line. Attributes with the same key
// replace earlier ones, so a retried step reports its last state. Outside a
// request it does nothing.
func Add(ctx context.Context, attrs ...slog.Attr) {
	rec := From(ctx)
	if rec == nil {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
next:
	for _, a := range attrs {
		for i := range rec.attrs {
			if rec.attrs[i].Key == a.Key {
				rec.attrs[i] = a
				continue next
			}
		}
		rec.attrs = append(rec.attrs, a)
	}
}

// SetError records the internal cause of a failed request. Only the log sees it;
// the client gets a problem document without it.
func SetError(ctx context.Context, err error) {
	rec := From(ctx)
	if rec == nil || err == nil {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.err = err
}

// SetRoute records the route template the router matched (e.g.
// "/stripe/checkout"), the only path form that metrics may use as a label.
func SetRoute(ctx context.Context, route string) {
	if rec := From(ctx); rec != nil {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.route = route
	}
}

// ID returns the request id.
func (r *Record) ID() string { return r.id }

// Route returns the matched route template, or "" when no route matched.
func (r *Record) Route() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.route
}

// Attrs returns a copy of the attributes added so far, plus "error" when one was set.
func (r *Record) Attrs() []slog.Attr {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]slog.Attr, 0, len(r.attrs)+1)
	out = append(out, r.attrs...)
	if r.err != nil {
		out = append(out, slog.String("error", r.err.Error()))
	}
	return out
}

// Err returns the recorded error, if any.
func (r *Record) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
