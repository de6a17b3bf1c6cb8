package requestlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
)

func TestRecord(t *testing.T) {
	ctx, rec := New(context.Background(), "req-9")
	if ID(ctx) != "req-9" || From(ctx) != rec {
		t.Fatalf("ID = %q, From = %p, want req-9 and %p", ID(ctx), From(ctx), rec)
	}
	Add(ctx, slog.String("user_id", "u1"), slog.Int("attempts", 1))
	Add(ctx, slog.Int("attempts", 3)) // replaces, a retried step reports its last state
	SetRoute(ctx, "/stripe/webhook")
	SetError(ctx, errors.New("boom"))
	SetError(ctx, nil) // no-op: does not clear

	got := fmt.Sprint(rec.Attrs())
	if want := "[user_id=u1 attempts=3 error=boom]"; got != want {
		t.Errorf("Attrs = %s, want %s", got, want)
	}
	if rec.Route() != "/stripe/webhook" {
		t.Errorf("Route = %q", rec.Route())
	}
}

func TestOutsideARequestNothingHappens(t *testing.T) {
	ctx := context.Background()
	Add(ctx, slog.String("k", "v"))
	SetError(ctx, errors.New("x"))
	SetRoute(ctx, "/x")
	if From(ctx) != nil || ID(ctx) != "" {
		t.Error("a bare context has a record")
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx, rec := New(context.Background(), "req")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			Add(ctx, slog.Int(fmt.Sprint("k", i%5), i))
			_ = rec.Attrs()
		}()
	}
	wg.Wait()
	if n := len(rec.Attrs()); n != 5 {
		t.Errorf("%d attributes, want 5 distinct keys", n)
	}
}
