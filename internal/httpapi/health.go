package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/acme/payments-api/internal/problem"
)

// Readiness decides what /readyz answers: ready when every check passes and the
// process is not draining. The zero value is ready and not draining.
type Readiness struct {
	draining atomic.Bool

	mu     sync.Mutex
	checks []func() error // each returns nil when ready, else a reason safe to show
}

// AddCheck adds a readiness condition (e.g. "verification keys loaded").
func (rd *Readiness) AddCheck(check func() error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.checks = append(rd.checks, check)
}

// Drain makes /readyz answer 503 from now on, so that load balancers stop sending
// new requests while the ones in flight finish.
func (rd *Readiness) Drain() { rd.draining.Store(true) }

// Err returns why the process is not ready, or nil.
func (rd *Readiness) Err() error {
	if rd.draining.Load() {
		return errDraining
	}
	rd.mu.Lock()
	checks := rd.checks
	rd.mu.Unlock()
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

var errDraining = errors.New("draining: the server is shutting down")

type status struct {
	Status string `json:"status"`
}

func writeStatus(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(status{Status: s})
}

// handleHealthz answers 200 while the process serves: liveness, no dependencies.
func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, "ok")
	})
}

// handleReadyz answers 200 when the process can do its work, else a 503 problem
// whose detail is the reason.
func handleReadyz(rd *Readiness) http.Handler {
	if rd == nil {
		rd = &Readiness{}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rd.Err(); err != nil {
			problem.Write(w, r, problem.Wrap(http.StatusServiceUnavailable, "not ready: "+err.Error(), err))
			return
		}
		writeStatus(w, "ready")
	})
}
