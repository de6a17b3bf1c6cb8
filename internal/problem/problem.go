// Package problem turns errors into RFC 9457 problem details
// (application/problem+json). It is the one place where an error becomes an HTTP
// response: an *Error carries a status and a detail written for the client;
// anything else is an internal failure and becomes a generic 500 whose cause goes
// to the request's log line only.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/acme/payments-api/internal/requestlog"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// Error is an error that is safe to show to a client. Detail is written for the
// client; Err, the cause, is logged and never sent.
type Error struct {
	Status int    // HTTP status code
	Type   string // URI reference identifying the problem type; "about:blank" when empty
	Detail string // human-readable explanation for the client; never upstream text
	Header http.Header
	Err    error // internal cause, for the log only
}

// New returns a client-facing error with the given status and detail.
func New(status int, detail string) *Error {
	return &Error{Status: status, Detail: detail}
}

// Newf is New with a formatted detail.
func Newf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns a client-facing error whose cause is err.
func Wrap(status int, detail string, err error) *Error {
	return &Error{Status: status, Detail: detail, Err: err}
}

// WithHeader returns e with an extra response header (Retry-After,
// WWW-Authenticate, Allow, ...).
func (e *Error) WithHeader(key, value string) *Error {
	if e.Header == nil {
		e.Header = make(http.Header)
	}
	e.Header.Set(key, value)
	return e
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Detail)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Body is the JSON document of a problem response.
type Body struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id"`
}

// Write sends err to the client as a problem document and records it on the
// request's log line. An error that is not (and does not wrap) an *Error is an
// internal failure: the client sees a generic 500.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	requestlog.SetError(r.Context(), err)

	var pe *Error
	if !errors.As(err, &pe) {
		pe = New(http.StatusInternalServerError, "The server could not complete the request.")
	}
	for k, vs := range pe.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := Body{
		Type:      pe.Type,
		Title:     http.StatusText(pe.Status),
		Status:    pe.Status,
		Detail:    pe.Detail,
		RequestID: requestlog.ID(r.Context()),
	}
	if body.Type == "" {
		body.Type = "about:blank"
	}
	if body.Detail == "" {
		body.Detail = body.Title
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(pe.Status)
	// An encoding error here means the client went away; there is nobody to tell.
	_ = json.NewEncoder(w).Encode(body)
}
