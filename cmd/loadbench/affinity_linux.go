package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cpuSplit is how the cores are shared out: the service (and the bare server)
// on some, this program (the load and the stand-ins) on the others, so that
// neither waits for the other's turn on a core and a latency's tail is the
// service's own, or the machine's other work, never the load generator's.
type cpuSplit struct {
	service, load, all unix.CPUSet
}

// splitCPUs halves the CPUs this process may run on: the upper half for the
// service, the lower for the load. ok is false with fewer than two.
func splitCPUs() (split cpuSplit, ok bool, err error) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return split, false, fmt.Errorf("reading the CPU affinity: %w", err)
	}
	var cpus []int
	for c := range maxCPUs {
		if all.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		return split, false, nil
	}
	split.all = all
	for i, c := range cpus {
		if i < len(cpus)/2 {
			split.load.Set(c)
		} else {
			split.service.Set(c)
		}
	}
	return split, true, nil
}

// maxCPUs is how many CPUs a unix.CPUSet can name.
const maxCPUs = 8 * int(unsafe.Sizeof(unix.CPUSet{}))

// loadOnly moves this process to the load's CPUs, for a measurement.
func (s *cpuSplit) loadOnly() error { return pinSelf(&s.load) }

// release gives this process every CPU again, to prepare the next scenario's
// requests (minting tokens is work for every core).
func (s *cpuSplit) release() error { return pinSelf(&s.all) }

// pinSelf moves every thread of this process to set, and sizes GOMAXPROCS to
// it. A thread started later inherits the mask of the thread that starts it;
// a second pass catches any started during the first.
func pinSelf(set *unix.CPUSet) error {
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: the thread has ended
				return fmt.Errorf("pinning thread %d: %w", tid, err)
			}
		}
	}
	runtime.GOMAXPROCS(set.Count())
	return nil
}

// startOnServiceCPUs runs start (which forks the service) on a thread whose
// mask is the service's CPUs, so that the child and every thread it makes
// inherit that mask from its first instruction; the Go runtime of the child
// sizes its GOMAXPROCS to it.
func (s *cpuSplit) startOnServiceCPUs(start func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.SchedSetaffinity(0, &s.service); err != nil {
		return fmt.Errorf("pinning the service: %w", err)
	}
	err := start()
	if perr := unix.SchedSetaffinity(0, &s.all); perr != nil && err == nil {
		err = fmt.Errorf("pinning back: %w", perr)
	}
	return err
}

// serviceCPUs lists the service's CPUs.
func (s *cpuSplit) serviceCPUs() []int { return cpuNumbers(&s.service) }

// loadCPUs lists the load generator's CPUs.
func (s *cpuSplit) loadCPUs() []int { return cpuNumbers(&s.load) }

func cpuNumbers(set *unix.CPUSet) []int {
	var cpus []int
	for c := range maxCPUs {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

func (s *cpuSplit) String() string {
	return fmt.Sprintf("service on CPU %s, load generator and stand-ins on CPU %s", cpuList(&s.service), cpuList(&s.load))
}

func cpuList(set *unix.CPUSet) string {
	out := ""
	for c := range maxCPUs {
		if set.IsSet(c) {
			if out != "" {
				out += ","
			}
			out += strconv.Itoa(c)
		}
	}
	return out
}
