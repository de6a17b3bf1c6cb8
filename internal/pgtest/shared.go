package pgtest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// shared is the test binary's cluster for Database and Template; Run starts
// and ends its life.
var shared struct {
	running atomic.Bool // Run is active

	once    sync.Once
	cluster *Cluster
	err     error

	seq atomic.Int64 // makes database names unique
}

// Run runs the package's tests, then stops the shared cluster and removes every
// data directory. Call it from TestMain, which may simply return afterwards:
//
//	func TestMain(m *testing.M) { pgtest.Run(m) }
//
// Every other function of the package fails the test when Run is not active:
// without it, nothing would remove the servers' data.
func Run(m *testing.M) {
	shared.running.Store(true)
	defer removePristine()
	defer func() {
		if shared.cluster != nil {
			shared.cluster.destroy()
		}
	}()
	m.Run() // its result becomes the exit code when TestMain returns
}

// requireRun fails t unless Run is active.
func requireRun(t testing.TB) {
	t.Helper()
	if !shared.running.Load() {
		t.Fatal("pgtest: call pgtest.Run(m) from the package's TestMain, so that the servers are removed after the tests")
	}
}

// sharedCluster starts the shared cluster on first use.
func sharedCluster(t testing.TB) *Cluster {
	t.Helper()
	requireRun(t)
	shared.once.Do(func() {
		c, err := newCluster()
		if err == nil {
			if err = c.start(); err != nil {
				c.destroy()
			}
		}
		shared.cluster, shared.err = c, err
		if err != nil {
			shared.cluster = nil
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cluster
}

// Database creates an empty database on the shared cluster, dropped when t
// ends, and returns its URL.
func Database(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "")
}

func newDatabase(t testing.TB, template string) string {
	t.Helper()
	c := sharedCluster(t)
	name := databaseName(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := c.CreateDatabase(ctx, name, template)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Error(err)
		}
	})
	return u
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// databaseName is the test's name made safe, plus a sequence number: readable
// in pg_stat_activity, unique in the cluster.
func databaseName(t testing.TB) string {
	base := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(base) > 40 {
		base = base[:40]
	}
	return fmt.Sprintf("t_%s_%d", base, shared.seq.Add(1))
}

// Template is a database set up once per test binary (for instance migrated)
// and copied for each test that asks for one.
type Template struct {
	name  string
	setup func(ctx context.Context, url string) error

	once sync.Once
	err  error
}

// NewTemplate returns a template called name whose database setup prepares,
// given its URL. setup runs on first use, at most once; it must close its
// connections before returning (a database cannot be copied while in use).
func NewTemplate(name string, setup func(ctx context.Context, url string) error) *Template {
	return &Template{name: "tpl_" + name, setup: setup}
}

// Database creates a copy of the template on the shared cluster, dropped when
// t ends, and returns its URL.
func (tpl *Template) Database(t testing.TB) string {
	t.Helper()
	c := sharedCluster(t)
	tpl.once.Do(func() { tpl.err = tpl.build(c) })
	if tpl.err != nil {
		t.Fatal(tpl.err)
	}
	return newDatabase(t, tpl.name)
}

func (tpl *Template) build(c *Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, err := c.CreateDatabase(ctx, tpl.name, "")
	if err != nil {
		return err
	}
	if err := tpl.setup(ctx, u); err != nil {
		return fmt.Errorf("pgtest: setting up template %s: %w", tpl.name, err)
	}
	return waitUnused(ctx, c, tpl.name)
}

// waitUnused waits until no session is connected to database name: a closed
// connection's backend exits a moment after the client hung up, and a session
// left open by the template's setup would make every copy fail.
func waitUnused(ctx context.Context, c *Cluster, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connecting: %w", err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var open int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name).Scan(&open)
		if err != nil {
			return fmt.Errorf("pgtest: checking template %s: %w", name, err)
		}
		if open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("pgtest: the setup of template " + name + " left connections open; close them before returning")
		}
		time.Sleep(20 * time.Millisecond) // polling the server's own view; there is nothing to wait on
	}
}
