package delivery_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acme/payments-api/internal/delivery"
)

// TestAdminHandler: River UI answers behind basic auth only; without valid
// credentials it is a 401 with a Basic challenge, and nothing of the queue.
func TestAdminHandler(t *testing.T) {
	t.Parallel()
	n := newNext(t)
	e := replica(t, migrated.Database(t), n, delivery.Options{})
	e.enqueue(t, "evt_admin")
	eventually(t, "delivered", func() bool { return e.state(t, "evt_admin") == "completed" })

	const user, pass = "ops", "correct-horse-battery"
	h, err := e.q.AdminHandler(testCtx(t), delivery.AdminOptions{Username: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	get := func(path, u, p string, auth bool) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth {
			req.SetBasicAuth(u, p)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	refused := []struct {
		name       string
		user, pass string
		auth       bool
	}{
		{"no credentials", "", "", false},
		{"wrong password", user, pass + "x", true},
		{"wrong username", "admin", pass, true},
		{"empty password", user, "", true},
		{"password as username", pass, user, true},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/", "/api/jobs?state=completed"} {
				resp, body := get(path, tt.user, tt.pass, tt.auth)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("GET %s = %d, want 401", path, resp.StatusCode)
				}
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want a Basic challenge", got)
				}
				if strings.Contains(body, "evt_admin") {
					t.Errorf("a refused request saw the queue: %s", body)
				}
			}
		})
	}

	resp, body := get("/", user, pass, true)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<html") {
		t.Errorf("GET / with credentials = %d %.80q, want River UI's page", resp.StatusCode, body)
	}
	resp, body = get("/api/jobs?state=completed", user, pass, true)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "evt_admin") {
		t.Errorf("GET /api/jobs with credentials = %d %.200q, want the delivered event", resp.StatusCode, body)
	}

	if _, err := e.q.AdminHandler(testCtx(t), delivery.AdminOptions{Username: user}); err == nil {
		t.Error("AdminHandler without a password succeeded")
	}
}
