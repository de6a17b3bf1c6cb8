package kubetest

import (
	"os"
	"strings"
	"testing"
)

// TestBinariesFromEnv checks that every missing program is named, and that
// the paths are taken as they are when all exist.
func TestBinariesFromEnv(t *testing.T) {
	vars := []string{"ETCD_BIN", "KUBE_APISERVER_BIN", "KUBE_CONTROLLER_MANAGER_BIN", "KUBE_SCHEDULER_BIN", "KWOK_BIN", "HELM_BIN"}
	exists := os.Args[0] // the test binary: a file that is there
	tests := []struct {
		name    string
		env     map[string]string
		wantErr []string // each in the error; none means success
	}{
		{
			name:    "nothing set",
			env:     map[string]string{},
			wantErr: []string{"ETCD_BIN is not set", "KUBE_APISERVER_BIN is not set", "KUBE_CONTROLLER_MANAGER_BIN is not set", "KUBE_SCHEDULER_BIN is not set", "KWOK_BIN is not set", "HELM_BIN is not set", "make test-cluster"},
		},
		{
			name:    "one not built",
			env:     map[string]string{"ETCD_BIN": exists, "KUBE_APISERVER_BIN": exists, "KUBE_CONTROLLER_MANAGER_BIN": exists, "KUBE_SCHEDULER_BIN": "/nonexistent/kube-scheduler", "KWOK_BIN": exists, "HELM_BIN": exists},
			wantErr: []string{"KUBE_SCHEDULER_BIN: stat /nonexistent/kube-scheduler"},
		},
		{
			name: "all there",
			env:  map[string]string{"ETCD_BIN": exists, "KUBE_APISERVER_BIN": exists, "KUBE_CONTROLLER_MANAGER_BIN": exists, "KUBE_SCHEDULER_BIN": exists, "KWOK_BIN": exists, "HELM_BIN": exists},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BinariesFromEnv(func(k string) string { return tt.env[k] })
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("BinariesFromEnv: %v", err)
				}
				want := Binaries{Etcd: exists, APIServer: exists, ControllerManager: exists, Scheduler: exists, Kwok: exists, Helm: exists}
				if got != want {
					t.Errorf("BinariesFromEnv = %+v, want %+v", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("BinariesFromEnv = %+v, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, v := range vars {
				if tt.env[v] == exists && strings.Contains(err.Error(), v) {
					t.Errorf("error %q names %s, which is there", err, v)
				}
			}
		})
	}
}
