//go:build !linux

package main

// cpuSplit shares out nothing where CPU affinity is not available: the
// service and the load share every core.
type cpuSplit struct{}

func splitCPUs() (cpuSplit, bool, error)                      { return cpuSplit{}, false, nil }
func (*cpuSplit) loadOnly() error                             { return nil }
func (*cpuSplit) release() error                              { return nil }
func (*cpuSplit) startOnServiceCPUs(start func() error) error { return start() }
func (*cpuSplit) String() string                              { return "" }
func (*cpuSplit) serviceCPUs() []int                          { return nil }
func (*cpuSplit) loadCPUs() []int                             { return nil }
