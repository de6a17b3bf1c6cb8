// Package problemtest checks RFC 9457 problem responses (internal/problem) in
// tests: the media type, exactly the members the service sends, and that the
// document agrees with the response it came in.
package problemtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/acme/payments-api/internal/problem"
)

// Response is what a problem check reads of an HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Read reads resp whole (and closes its body).
func Read(tb testing.TB, resp *http.Response) Response {
	tb.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("reading the response body: %v", err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// Recorded is what rec recorded.
func Recorded(rec *httptest.ResponseRecorder) Response {
	return Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// Decode checks that r is a problem document and returns it: Content-Type
// application/problem+json, exactly the members type, title, status, detail
// and request_id, status and title those of the response, a detail, and a
// request_id equal to the X-Request-ID header when the response has one. A
// failure stops the test: what follows would check a document that is not one.
func Decode(tb testing.TB, r Response) problem.Body {
	tb.Helper()
	if got, want := r.Header.Get("Content-Type"), problem.ContentType; got != want {
		tb.Fatalf("Content-Type = %q, want %q (body %s)", got, want, r.Body)
	}
	var body problem.Body
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		tb.Fatalf("problem body %s: %v", r.Body, err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &members); err != nil || len(members) != 5 {
		tb.Fatalf("problem body %s: want exactly type, title, status, detail and request_id", r.Body)
	}
	if body.Status != r.Status || body.Title != http.StatusText(r.Status) || body.Type == "" || body.Detail == "" {
		tb.Fatalf("problem %+v does not match the response status %d", body, r.Status)
	}
	if id := r.Header.Get("X-Request-ID"); id != "" && body.RequestID != id {
		tb.Fatalf("problem request_id = %q, X-Request-ID = %q", body.RequestID, id)
	}
	return body
}

// Check is Decode, and then checks the status and the detail.
func Check(tb testing.TB, r Response, status int, detail string) problem.Body {
	tb.Helper()
	body := Decode(tb, r)
	if got, want := r.Status, status; got != want {
		tb.Errorf("status = %d, want %d", got, want)
	}
	if got, want := body.Detail, detail; got != want {
		tb.Errorf("detail = %q, want %q", got, want)
	}
	return body
}
