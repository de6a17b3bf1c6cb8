package config

import (
	"errors"
	"net"
	"net/url"
	"strings"

	"github.com/acme/payments-api/internal/origin"
)

// parseHTTPURL parses an absolute http(s) URL without credentials or fragment.
func parseHTTPURL(v string) (*url.URL, string) {
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return nil, "is not a valid URL (want an absolute http:// or https:// URL)"
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, "must be an absolute http:// or https:// URL"
	case u.Host == "" || u.Hostname() == "":
		return nil, "must be an absolute URL with a host"
	case u.User != nil:
		return nil, "must not contain credentials"
	case u.Fragment != "":
		return nil, "must not contain a fragment"
	}
	return u, ""
}

// url reads an absolute http(s) URL. Unset (with no default) or invalid, it
// returns nil; an invalid one is reported.
func (l *loader) url(name, def string) (string, *url.URL) {
	v := l.get(name, def)
	if v == "" {
		return "", nil
	}
	u, msg := parseHTTPURL(v)
	if msg != "" {
		l.fail(name, "%s", msg)
		return "", nil
	}
	return v, u
}

// urlValue is url for the variables that keep only the text.
func (l *loader) urlValue(name, def string) string {
	v, _ := l.url(name, def)
	return v
}

// browserURL reads a URL a browser is sent to, under origin.ParseURL, the
// rule the checkout endpoint applies, plus this package's refusal of a
// fragment. Unset (with no default) or invalid, it returns nil; an invalid one
// is reported.
func (l *loader) browserURL(name, def string) (string, *url.URL) {
	v := l.get(name, def)
	if v == "" {
		return "", nil
	}
	u, err := origin.ParseURL(v)
	if err == nil && u.Fragment != "" {
		err = errors.New("must not contain a fragment")
	}
	if err != nil {
		l.fail(name, "%v", err)
		return "", nil
	}
	return v, u
}

// returnURL is where Stripe sends the browser back to: it must be on one of the
// allowed origins, the same rule the checkout endpoint applies to URLs a client
// sends and to these at start-up, so that no configuration turns the service
// into an open redirect or passes here only to be refused there. With no
// allowed origins (their variable is invalid and reported), only the URL's
// form is checked.
func (l *loader) returnURL(name, def string, allowed origin.Set) string {
	v, u := l.browserURL(name, def)
	if u == nil || allowed.Len() == 0 {
		return v
	}
	if !allowed.Allows(u) {
		l.fail(name, "must be on an origin listed in CORS_ALLOWED_ORIGINS (%s is not)", origin.Of(u))
		return ""
	}
	return v
}

// clerkURL is a URL that must be https, except on a loopback host where local
// development runs Clerk stand-ins over plain http.
func (l *loader) clerkURL(name, def string) string {
	v, u := l.url(name, def)
	if u == nil {
		return ""
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		l.fail(name, "must use https (plain http is allowed only on a loopback host for local development)")
		return ""
	}
	return v
}

// IsLoopback reports whether host names this machine: localhost or a loopback IP.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// origins reads a list of exact origins; see origin.Parse. An invalid list is
// reported and gives the zero Set.
func (l *loader) origins(name, def string) origin.Set {
	set, err := origin.NewSet(l.list(name, def))
	if err != nil {
		l.fail(name, "%v", err)
	}
	return set
}
