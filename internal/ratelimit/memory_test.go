package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMemoryBound(t *testing.T) {
	clk := newClock()
	const maxUsers = 50
	m, err := NewMemory(MemoryOptions{Rate: Rate{N: 10, Per: time.Minute}, MaxTrackedUsers: maxUsers, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}

	// A crowd of distinct users, all at once: the cap holds.
	for i := range 5000 {
		m.Allow(context.Background(), fmt.Sprintf("user_%d", i))
		if n := m.len(); n > maxUsers {
			t.Fatalf("after %d users: %d tracked, want at most %d", i+1, n, maxUsers)
		}
	}
	if got := m.len(); got != maxUsers {
		t.Errorf("tracked = %d, want %d (full)", got, maxUsers)
	}

	// Once their buckets refilled (the whole period), idle users are dropped
	// by the next request.
	clk.Add(time.Minute)
	m.Allow(context.Background(), "ada")
	if got := m.len(); got != 1 {
		t.Errorf("tracked after everyone idled = %d, want 1", got)
	}
}

func TestMemoryKeepsActiveUsers(t *testing.T) {
	clk := newClock()
	m, err := NewMemory(MemoryOptions{Rate: Rate{N: 1, Per: time.Minute}, MaxTrackedUsers: 3, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	take(t, m, "ada", 1)
	// Ada keeps being refused while other users arrive: she stays limited,
	// because she is more recently used than the cap's victim.
	for i, u := range []string{"u1", "u2", "u3"} {
		clk.Add(time.Second)
		if ok, _ := m.Allow(context.Background(), "ada"); ok {
			t.Fatalf("ada let through after %d s", i+1)
		}
		m.Allow(context.Background(), u)
	}
	if got := m.len(); got != 3 {
		t.Errorf("len = %d, want the cap 3", got)
	}
	if ok, _ := m.Allow(context.Background(), "ada"); ok {
		t.Error("ada's limit was evicted while she was the most active user")
	}
}

func TestNewMemoryRefusesNonsense(t *testing.T) {
	tests := []struct {
		name string
		o    MemoryOptions
		want string
	}{
		{"no rate", MemoryOptions{}, "rate 0 per 0s"},
		{"zero per period", MemoryOptions{Rate: Rate{N: 0, Per: time.Minute}}, "rate 0 per 1m0s"},
		{"no period", MemoryOptions{Rate: Rate{N: 10}}, "rate 10 per 0s"},
		{"more than one per nanosecond", MemoryOptions{Rate: Rate{N: 10, Per: time.Nanosecond}}, "rate 10 per 1ns"},
		{"negative cap", MemoryOptions{Rate: Rate{N: 10, Per: time.Minute}, MaxTrackedUsers: -1}, "MaxTrackedUsers -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMemory(tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewMemory(%+v) = %v, %v; want an error containing %q", tt.o, m, err, tt.want)
			}
		})
	}
}
