package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Rate is a number of events per period; the zero Rate means "no limit".
type Rate struct {
	N   int
	Per time.Duration
}

// Off reports whether the rate imposes no limit.
func (r Rate) Off() bool { return r.N == 0 }

func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	return fmt.Sprintf("%d/%s", r.N, unit)
}

var rateRe = regexp.MustCompile(`^([0-9]{1,9})/([smh])$`)

func (l *loader) rate(name, def string) Rate {
	v := strings.ToLower(l.get(name, def))
	if v == "off" {
		return Rate{}
	}
	m := rateRe.FindStringSubmatch(v)
	if m == nil {
		l.fail(name, "%q is not a rate (want N/s, N/m, N/h or off)", v)
		return Rate{}
	}
	n, _ := strconv.Atoi(m[1]) // the pattern admits only digits
	if n == 0 {
		l.fail(name, "must allow at least 1 request (use off to disable the limit)")
		return Rate{}
	}
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
	return Rate{N: n, Per: per}
}
