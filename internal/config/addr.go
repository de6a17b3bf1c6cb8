package config

import (
	"net"
	"strconv"
	"strings"
)

// ListenAddr reads and checks LISTEN_ADDR alone, for commands that need only
// the public listener's address (the healthcheck) and must work without the
// rest of the configuration.
func ListenAddr(getenv func(string) string) (string, error) {
	l := loader{getenv: getenv}
	addr := l.addr("LISTEN_ADDR", DefaultListenAddr, false)
	if len(l.problems) > 0 {
		return "", l.problems
	}
	return addr, nil
}

// addr reads a listener's host:port. With offAllowed, "off" switches the
// listener off and gives "".
func (l *loader) addr(name, def string, offAllowed bool) string {
	v := l.get(name, def)
	if offAllowed && strings.EqualFold(v, "off") {
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		l.fail(name, "%q is not a host:port address (e.g. :8001)", v)
		return ""
	}
	if _, ok := portNumber(port); !ok {
		l.fail(name, "%q has an invalid port", v)
		return ""
	}
	if strings.ContainsAny(host, " /") {
		l.fail(name, "%q has an invalid host", v)
		return ""
	}
	return v
}

// portNumber parses a port in 0–65535.
func portNumber(port string) (int, bool) {
	n, err := strconv.Atoi(port)
	return n, err == nil && n >= 0 && n <= 65535
}

// namedAddr is a listener address beside the variable that set it.
type namedAddr struct{ name, addr string }

// distinctPorts refuses two listeners on one port, whatever their hosts:
// :8001, 127.0.0.1:8001 and [::]:8001 all collide on a host with one network
// interface, and where they would not, the mix-up is still a mistake (metrics
// or the admin UI served where the public API was meant to be). Port 0 asks
// for any free port and never collides. Addresses already refused or switched
// off are skipped.
func (l *loader) distinctPorts(addrs ...namedAddr) {
	taken := map[int]string{} // port → the variable that has it
	for _, a := range addrs {
		if a.addr == "" {
			continue
		}
		_, p, _ := net.SplitHostPort(a.addr) // checked by addr
		port, _ := portNumber(p)
		if port == 0 {
			continue
		}
		if first, ok := taken[port]; ok {
			l.fail(a.name, "must differ from %s's port %d (each listener needs a port of its own, whatever the hosts)", first, port)
			continue
		}
		taken[port] = a.name
	}
}
