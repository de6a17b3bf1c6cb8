package delivery

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"riverqueue.com/riverui"

	"github.com/acme/payments-api/internal/problem"
)

// AdminOptions configures AdminHandler.
type AdminOptions struct {
	// Username and Password are the HTTP basic auth credentials; both are
	// required.
	Username, Password string
	// Logger receives River UI's errors (discarded when nil).
	Logger *slog.Logger
}

// AdminHandler returns River UI (riverqueue.com/riverui) on the queue's
// database, at the root path, behind HTTP basic auth: the operator's view of
// the queue (what waits, what failed and why, the dead letter) with its
// actions (retry, cancel, delete). River UI has no authentication of its own.
// Its background work runs until ctx ends.
func (q *Queue) AdminHandler(ctx context.Context, opts AdminOptions) (http.Handler, error) {
	if opts.Username == "" || opts.Password == "" {
		return nil, errors.New("delivery: the admin UI needs a username and a password")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(q.client, nil),
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: river ui: %w", err)
	}
	if err := ui.Start(ctx); err != nil {
		return nil, fmt.Errorf("delivery: starting river ui: %w", err)
	}
	return basicAuth(opts.Username, opts.Password, ui), nil
}

// basicAuth lets through requests with the right credentials and answers the
// rest 401 with a Basic challenge. Both parts are compared in constant time,
// as digests, so that neither their content nor their length leaks through
// timing.
func basicAuth(username, password string, next http.Handler) http.Handler {
	wantUser, wantPass := sha256.Sum256([]byte(username)), sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		// Both comparisons always run: a wrong username costs what a wrong
		// password does.
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || userOK&passOK != 1 {
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "Valid admin credentials are required.").
				WithHeader("WWW-Authenticate", `Basic realm="payments-api admin", charset="UTF-8"`))
			return
		}
		next.ServeHTTP(w, r)
	})
}
