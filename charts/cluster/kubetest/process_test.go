package kubetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartServingRetriesTakenPorts runs a shell that stands in for a server:
// a port taken between its choice and the program's bind is retried with new
// ports, three times in all; any other early exit is reported at once.
func TestStartServingRetriesTakenPorts(t *testing.T) {
	tests := []struct {
		name      string
		script    string // run by sh in the cluster directory
		ready     bool   // whether the health check passes once the program runs
		wantRuns  int
		wantErr   error // nil: started
		wantInErr string
	}{
		{
			name:     "port taken every time",
			script:   "echo run >> runs; echo 'listen tcp 127.0.0.1:1: bind: address already in use'; exit 1",
			wantRuns: 3, wantErr: errAddrInUse, wantInErr: "address already in use",
		},
		{
			name:     "another failure",
			script:   "echo run >> runs; echo 'unknown flag --nope'; exit 2",
			wantRuns: 1, wantInErr: "unknown flag --nope",
		},
		{
			name:     "serving",
			script:   "echo run >> runs; exec sleep 60",
			ready:    true,
			wantRuns: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			var gotPorts []int
			args := func(ports []int) []string {
				gotPorts = ports
				return []string{"-c", tt.script}
			}
			ready := func(context.Context, []int) error {
				if !tt.ready {
					return errors.New("not serving")
				}
				if runs, _ := os.ReadFile(filepath.Join(dir, "runs")); !strings.Contains(string(runs), "run") {
					return errors.New("not started")
				}
				return nil
			}
			p, ports, err := startServing(ctx, dir, "server", "/bin/sh", 2, args, ready)
			if p != nil {
				defer p.stop(stopGrace)
			}

			runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
			if got := strings.Count(string(runs), "run"); got != tt.wantRuns {
				t.Errorf("program ran %d times, want %d", got, tt.wantRuns)
			}
			if len(gotPorts) != 2 || gotPorts[0] == gotPorts[1] {
				t.Errorf("ports %v, want two distinct ones", gotPorts)
			}
			switch {
			case tt.wantInErr == "" && err != nil:
				t.Fatalf("startServing: %v", err)
			case tt.wantInErr == "":
				if p == nil || p.exited() || len(ports) != 2 {
					t.Errorf("started: process %v, ports %v; want a running process and its two ports", p, ports)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantInErr):
				t.Errorf("startServing: error %v, want one containing %q", err, tt.wantInErr)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("startServing: error %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && errors.Is(err, errAddrInUse):
				t.Errorf("startServing: error %v, want no port clash", err)
			}
		})
	}
}
