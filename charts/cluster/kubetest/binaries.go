package kubetest

import (
	"errors"
	"fmt"
	"os"
)

// Binaries are the paths of the programs a Cluster runs.
type Binaries struct {
	Etcd              string
	APIServer         string
	ControllerManager string
	Scheduler         string
	Kwok              string
	Helm              string
}

// BinariesFromEnv reads the paths that `make cluster` builds and
// `make test-cluster` exports: ETCD_BIN, KUBE_APISERVER_BIN,
// KUBE_CONTROLLER_MANAGER_BIN, KUBE_SCHEDULER_BIN, KWOK_BIN, and HELM_BIN from
// `make tools`. Every one missing is named in the error.
func BinariesFromEnv(getenv func(string) string) (Binaries, error) {
	b := Binaries{
		Etcd:              getenv("ETCD_BIN"),
		APIServer:         getenv("KUBE_APISERVER_BIN"),
		ControllerManager: getenv("KUBE_CONTROLLER_MANAGER_BIN"),
		Scheduler:         getenv("KUBE_SCHEDULER_BIN"),
		Kwok:              getenv("KWOK_BIN"),
		Helm:              getenv("HELM_BIN"),
	}
	var errs []error
	for _, v := range []struct{ env, path string }{
		{"ETCD_BIN", b.Etcd},
		{"KUBE_APISERVER_BIN", b.APIServer},
		{"KUBE_CONTROLLER_MANAGER_BIN", b.ControllerManager},
		{"KUBE_SCHEDULER_BIN", b.Scheduler},
		{"KWOK_BIN", b.Kwok},
		{"HELM_BIN", b.Helm},
	} {
		if v.path == "" {
			errs = append(errs, fmt.Errorf("%s is not set", v.env))
			continue
		}
		if _, err := os.Stat(v.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", v.env, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Binaries{}, fmt.Errorf("%w\n`make test-cluster` builds the control plane and installs helm into bin/, and sets these", err)
	}
	return b, nil
}
