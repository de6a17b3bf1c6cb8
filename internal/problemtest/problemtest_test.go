package problemtest_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/acme/payments-api/internal/problem"
	"github.com/acme/payments-api/internal/problemtest"
	"github.com/acme/payments-api/internal/requestlog"
)

func TestCheckAcceptsWhatProblemWrites(t *testing.T) {
	for _, err := range []error{
		problem.New(http.StatusRequestEntityTooLarge, "Too large."),
		errors.New("an internal failure"),
	} {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		ctx, _ := requestlog.New(req.Context(), "req-7")
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Request-ID", "req-7")
		problem.Write(rec, req.WithContext(ctx), err)
		body := problemtest.Decode(t, problemtest.Recorded(rec))
		if body.RequestID != "req-7" {
			t.Errorf("request_id = %q", body.RequestID)
		}
	}
}

// fakeTB records failures instead of failing, so that the checks' own
// failures can be tested.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Errorf(string, ...any) { f.failed = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true; panic(f) }

func TestDecodeRefusesWhatIsNoProblem(t *testing.T) {
	problemJSON := http.Header{"Content-Type": {problem.ContentType}}
	tests := []struct {
		name string
		r    problemtest.Response
	}{
		{"plain JSON", problemtest.Response{400, http.Header{"Content-Type": {"application/json"}}, []byte(`{"type":"about:blank","title":"Bad Request","status":400,"detail":"x","request_id":"r"}`)}},
		{"extra member", problemtest.Response{400, problemJSON, []byte(`{"type":"about:blank","title":"Bad Request","status":400,"detail":"x","request_id":"r","stack":"…"}`)}},
		{"missing member", problemtest.Response{400, problemJSON, []byte(`{"type":"about:blank","title":"Bad Request","status":400,"detail":"x"}`)}},
		{"status disagrees", problemtest.Response{404, problemJSON, []byte(`{"type":"about:blank","title":"Bad Request","status":400,"detail":"x","request_id":"r"}`)}},
		{"no detail", problemtest.Response{400, problemJSON, []byte(`{"type":"about:blank","title":"Bad Request","status":400,"detail":"","request_id":"r"}`)}},
		{"request id disagrees", problemtest.Response{400, http.Header{"Content-Type": {problem.ContentType}, "X-Request-Id": {"other"}}, []byte(`{"type":"about:blank","title":"Bad Request","status":400,"detail":"x","request_id":"r"}`)}},
		{"not JSON", problemtest.Response{400, problemJSON, []byte(`Bad Request`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTB{TB: t}
			func() {
				defer func() { _ = recover() }()
				problemtest.Decode(f, tt.r)
			}()
			if !f.failed {
				t.Error("Decode accepted it")
			}
		})
	}
	f := &fakeTB{TB: t}
	ok := problemtest.Response{400, problemJSON, []byte(`{"type":"about:blank","title":"Bad Request","status":400,"detail":"x","request_id":"r"}`)}
	problemtest.Check(f, ok, 400, "another detail")
	if !f.failed {
		t.Error("Check accepted the wrong detail")
	}
}
