// Package fakenext is a stand-in for the Next.js route that receives the events
// payments-api forwards. It verifies each request's Stripe-Signature exactly as
// the Next.js side does (stripe-go's ConstructEventWithOptions with the shared
// secret), records what arrived, and answers like an idempotent handler: the first
// accepted delivery of an event id is processed, later ones are acknowledged as
// duplicates. It can be scripted to fail or stall, or told to refuse events for
// a while (Next.js down), for tests and the local sandbox.
package fakenext

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

// maxBody is larger than payments-api's own 512 KiB limit, so that the receiver
// never is the reason a legitimate event fails.
const maxBody = 1 << 20

// StatusClientClosed is the status recorded for a delivery whose sender hung
// up while it was delayed (nginx's 499): not accepted, not processed.
const StatusClientClosed = 499

// Delivery is one request whose signature verified.
type Delivery struct {
	N         int         // 1-based index of the request among all requests the receiver got
	ID        string      // event id
	Type      string      // event type
	Body      []byte      // the raw body, as received
	Header    http.Header // the request headers
	Status    int         // the status the receiver answered
	Duplicate bool        // an earlier delivery of the same id was already accepted (2xx)
}

// Accepted reports whether the receiver answered 2xx.
func (d Delivery) Accepted() bool { return d.Status >= 200 && d.Status < 300 }

// Option configures a Receiver.
type Option func(*Receiver)

// WithRespond scripts the status answered to the n-th request (1-based, counting
// every request); a verified event is only recorded as processed when the status
// is 2xx. The default answers 200.
func WithRespond(respond func(n int) int) Option {
	return func(r *Receiver) { r.respond = respond }
}

// WithDelay makes the n-th request wait before it is answered, or until the
// request is cancelled, whichever comes first: a slow or hanging Next.js. A
// request cancelled meanwhile is recorded with StatusClientClosed.
func WithDelay(delay func(n int) time.Duration) Option {
	return func(r *Receiver) { r.delay = delay }
}

// WithOutput prints one line per verified delivery to w (the sandbox's terminal).
// Nothing of the payload beyond the event id and type is printed.
func WithOutput(w io.Writer) Option {
	return func(r *Receiver) { r.out = w }
}

// Receiver is an http.Handler standing in for the Next.js webhook route. Its
// methods are safe for concurrent use.
type Receiver struct {
	secret  string
	respond func(n int) int
	delay   func(n int) time.Duration
	out     io.Writer

	mu         sync.Mutex
	requests   int
	deliveries []Delivery
	processed  map[string]bool
	refusal    refusal
}

// refusal is a Refuse in force: status until until (forever when zero).
type refusal struct {
	status int
	until  time.Time
}

func (r refusal) active(now time.Time) bool {
	return r.status != 0 && (r.until.IsZero() || now.Before(r.until))
}

// New returns a Receiver that verifies signatures with secret.
func New(secret string, opts ...Option) *Receiver {
	r := &Receiver{
		secret:    secret,
		processed: make(map[string]bool),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// ServeHTTP verifies and records one delivery.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	rc.mu.Unlock()

	if req.Method != http.MethodPost {
		rc.reject(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		rc.reject(w, http.StatusBadRequest, "unreadable body")
		return
	}
	event, err := webhook.ConstructEventWithOptions(body, req.Header.Get("Stripe-Signature"), rc.secret,
		webhook.ConstructEventOptions{Tolerance: webhook.DefaultTolerance, IgnoreAPIVersionMismatch: true})
	if err != nil {
		rc.reject(w, http.StatusBadRequest, "signature verification failed")
		return
	}

	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(n)
	}
	if rc.delay != nil {
		if d := rc.delay(n); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-req.Context().Done():
				t.Stop()
				// The sender hung up before the answer: it will send again, so
				// the event is not taken.
				status = StatusClientClosed
			}
		}
	}

	rc.mu.Lock()
	if rc.refusal.active(time.Now()) && status != StatusClientClosed {
		status = rc.refusal.status
	}
	d := Delivery{
		N:      n,
		ID:     event.ID,
		Type:   string(event.Type),
		Body:   body,
		Header: req.Header.Clone(),
		Status: status,
	}
	if d.Accepted() {
		d.Duplicate = rc.processed[event.ID]
		rc.processed[event.ID] = true
	}
	rc.deliveries = append(rc.deliveries, d)
	rc.mu.Unlock()

	if rc.out != nil {
		note := ""
		if d.Duplicate {
			note = " (duplicate, already processed)"
		}
		fmt.Fprintf(rc.out, "next.js received %s %s -> %d%s\n", d.ID, d.Type, d.Status, note)
	}

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"received\":true,\"duplicate\":%t}\n", d.Duplicate)
}

func (rc *Receiver) reject(w http.ResponseWriter, status int, msg string) {
	if rc.out != nil {
		fmt.Fprintf(rc.out, "next.js rejected a request: %s\n", msg)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":%q}\n", msg)
}

// Refuse makes the receiver answer status (a non-2xx status, e.g. 503) to
// every verified request for d, or until Accept when d is zero: Next.js down or
// failing for a while. It overrides WithRespond meanwhile. A refused request is
// recorded, with its status, and not processed.
func (rc *Receiver) Refuse(status int, d time.Duration) {
	if status >= 200 && status < 300 {
		panic("fakenext: Refuse needs a non-2xx status")
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.refusal = refusal{status: status}
	if d > 0 {
		rc.refusal.until = time.Now().Add(d)
	}
	if rc.out != nil {
		fmt.Fprintf(rc.out, "next.js now refuses events with %d %s\n", status, refusalSpan(d))
	}
}

func refusalSpan(d time.Duration) string {
	if d > 0 {
		return "for " + d.String()
	}
	return "until told to accept"
}

// Accept ends a Refuse at once.
func (rc *Receiver) Accept() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.refusal = refusal{}
	if rc.out != nil {
		fmt.Fprintln(rc.out, "next.js accepts events again")
	}
}

// ControlHandler returns the receiver's remote control, for a person driving
// the sandbox with curl (mount it with http.StripPrefix):
//
//	POST /refuse?for=2m&status=503   refuse for two minutes (for and status optional:
//	                                 until /accept, and 503)
//	POST /accept                     accept again
func (rc *Receiver) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /refuse", func(w http.ResponseWriter, r *http.Request) {
		d, status, err := parseRefuse(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.Refuse(status, d)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"refusing\":true,\"status\":%d,\"for\":%q}\n", status, refusalSpan(d))
	})
	mux.HandleFunc("POST /accept", func(w http.ResponseWriter, r *http.Request) {
		rc.Accept()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"refusing":false}`)
	})
	return mux
}

func parseRefuse(r *http.Request) (time.Duration, int, error) {
	q := r.URL.Query()
	var d time.Duration
	if v := q.Get("for"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d < 0 {
			return 0, 0, fmt.Errorf("for: %q is not a duration such as 90s or 2m", v)
		}
	}
	status := http.StatusServiceUnavailable
	if v := q.Get("status"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 300 || n > 599 {
			return 0, 0, fmt.Errorf("status: %q is not a status from 300 to 599", v)
		}
		status = n
	}
	return d, status, nil
}

// Requests returns how many requests reached the receiver, verified or not.
func (rc *Receiver) Requests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests
}

// Deliveries returns a copy of the verified deliveries, in arrival order.
func (rc *Receiver) Deliveries() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Delivery(nil), rc.deliveries...)
}

// Processed returns the deliveries that were accepted and not duplicates: what
// the Next.js application acted upon, once per event id.
func (rc *Receiver) Processed() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []Delivery
	for _, d := range rc.deliveries {
		if d.Accepted() && !d.Duplicate {
			out = append(out, d)
		}
	}
	return out
}
