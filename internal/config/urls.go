package config

import (
	"errors"
	"net"
	"net/url"
	"strings"

	"github.com/acme/payments-api/internal/origin"
)

// parseHTTPURL parses an absolute http(s) URL without credentials or fragment.
// The message, when not empty, completes a sentence about the variable; it
// never quotes the value.
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

// httpURL reads an absolute http(s) URL. Unset (with no default) or invalid,
// it returns nil; an invalid one is reported.
func (l *loader) httpURL(name, def string) *url.URL {
	v := l.get(name, def)
	if v == "" {
		return nil
	}
	u, msg := parseHTTPURL(v)
	if msg != "" {
		l.fail(name, "%s", msg)
		return nil
	}
	return u
}

// secureURL is an httpURL that must be https, except on a loopback host,
// where local development runs stand-ins (Clerk's, stripe-mock) over plain
// http: anywhere else, plain http would let the network read API keys or
// forge the keys that tokens are checked with.
func (l *loader) secureURL(name, def string) *url.URL {
	u := l.httpURL(name, def)
	if u != nil && u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		l.fail(name, "must use https (plain http is allowed only on a loopback host for local development)")
		return nil
	}
	return u
}

// clerkIssuer reads the required issuer, a secure URL kept as written: it is
// compared exactly with the token's iss claim.
func (l *loader) clerkIssuer(name string) string {
	v := l.get(name, "")
	if v == "" {
		l.fail(name, "is required (your Clerk Frontend API URL, e.g. https://clerk.example.com)")
		return ""
	}
	if l.secureURL(name, v) == nil {
		return ""
	}
	if strings.HasSuffix(v, "/") {
		l.fail(name, "must not end with / (it is compared exactly with the token's iss claim)")
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

// parseBrowserURL parses a URL a browser is sent to under origin.ParseURL, the
// rule the checkout endpoint applies, plus the refusal of a fragment, which
// Stripe's redirects would drop.
func parseBrowserURL(v string) (*url.URL, error) {
	u, err := origin.ParseURL(v)
	if err == nil && u.Fragment != "" {
		err = errors.New("must not contain a fragment")
	}
	return u, err
}

// browserURL reads a URL a browser is sent to. Unset (with no default) or
// invalid, it returns nil; an invalid one is reported.
func (l *loader) browserURL(name, def string) *url.URL {
	v := l.get(name, def)
	if v == "" {
		return nil
	}
	u, err := parseBrowserURL(v)
	if err != nil {
		l.fail(name, "%v", err)
		return nil
	}
	return u
}

// returnURL is where Stripe sends the browser back to: it must be on one of the
// allowed origins, the same rule the API applies to URLs a client sends, so
// that no configuration turns the service into an open redirect or passes here
// only to be refused there. With no allowed origins (their variable is invalid
// and reported), only the URL's form is checked. The URL is kept as written.
func (l *loader) returnURL(name, def string, allowed origin.Set) string {
	v := l.get(name, def)
	if v == "" {
		return ""
	}
	u, err := parseBrowserURL(v)
	if err != nil {
		l.fail(name, "%v", err)
		return ""
	}
	if allowed.Len() > 0 && !allowed.Allows(u) {
		l.fail(name, "must be on an origin listed in CORS_ALLOWED_ORIGINS (%s is not)", origin.Of(u))
		return ""
	}
	return v
}

// origins reads a list of exact origins with origin.NewSet, the one rule for
// them. An invalid list is reported and gives the zero Set.
func (l *loader) origins(name, def string) origin.Set {
	set, err := origin.NewSet(l.list(name, def))
	if err != nil {
		l.fail(name, "%v", err)
	}
	return set
}
