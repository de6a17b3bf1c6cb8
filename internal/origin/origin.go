// Package origin holds the one rule for browser origins and the URLs a browser
// is sent back to: how an allowed origin is written and normalised, and which
// return URLs are safe to hand to Stripe. Configuration and the checkout
// handler both apply it, so that no value passes one and fails the other.
package origin

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// MaxURLLength bounds a return URL: far beyond any real one, and below
// Stripe's own limit of 5000.
const MaxURLLength = 2048

// Of returns u's origin as a browser sends it in the Origin header:
// scheme://host[:port], lower case, without the scheme's default port, so that
// https://App.example.com:443 and https://app.example.com are one origin.
func Of(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		return scheme + "://" + net.JoinHostPort(host, port)
	}
	if strings.Contains(host, ":") { // IPv6 literal
		return scheme + "://[" + host + "]"
	}
	return scheme + "://" + host
}

// ParseURL parses raw as a URL a browser is to be sent to: absolute http(s),
// with a host and no credentials, at most MaxURLLength bytes. It refuses
// spaces, control characters, backslashes and non-ASCII outright, because
// that is where URL parsers disagree (a browser reads https://good\@evil as
// host evil, Go does not) and a browser would have percent-encoded them.
// Errors complete a sentence whose subject is the URL, and never quote it.
func ParseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("must not be empty")
	}
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("must be at most %d bytes long", MaxURLLength)
	}
	if err := checkBytes(raw); err != nil {
		return nil, err
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("is not a valid URL (want an absolute http:// or https:// URL)")
	case u.Scheme != "http" && u.Scheme != "https": // url.Parse lowercases the scheme
		return nil, errors.New("must be an absolute http:// or https:// URL")
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, errors.New("must be an absolute URL with a host (scheme://host/…)")
	case u.User != nil:
		return nil, errors.New("must not contain credentials")
	}
	return u, nil
}

func checkBytes(raw string) error {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '\\':
			return errors.New("must not contain a backslash (browsers read it as /)")
		case c >= 0x80:
			return errors.New("must not contain a non-ASCII character (percent-encode it, and write a host in its xn-- form)")
		case c == ' ':
			return errors.New("must not contain a space (percent-encode it as %20)")
		case c < 0x20 || c == 0x7f:
			return errors.New("must not contain a control character")
		}
	}
	return nil
}

// Parse parses one allowed origin, scheme://host[:port] with at most a
// trailing /, and returns it normalised as Of does. A wildcard is refused: an
// origin list says exactly whom the service trusts.
func Parse(s string) (string, error) {
	if strings.Contains(s, "*") {
		return "", errors.New("is a wildcard: list each exact origin instead (e.g. https://app.example.com); wildcards are refused")
	}
	u, err := ParseURL(s)
	if err != nil {
		return "", err
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", errors.New("must be an origin (scheme://host[:port]) without path, query or fragment")
	}
	return Of(u), nil
}

// Set is a non-empty list of allowed origins, normalised and without
// duplicates. The zero Set allows nothing.
type Set struct {
	origins []string
}

// NewSet parses each of list with Parse. The error names the first item
// refused, or says the list is empty.
func NewSet(list []string) (Set, error) {
	var s Set
	for _, item := range list {
		o, err := Parse(item)
		if err != nil {
			return Set{}, fmt.Errorf("%q %w", item, err)
		}
		if !slices.Contains(s.origins, o) {
			s.origins = append(s.origins, o)
		}
	}
	if len(s.origins) == 0 {
		return Set{}, errors.New("must list at least one origin")
	}
	return s, nil
}

// Len returns the number of origins in the set; 0 for the zero Set.
func (s Set) Len() int { return len(s.origins) }

// List returns the normalised origins in the order first listed.
func (s Set) List() []string { return slices.Clone(s.origins) }

// Allows reports whether u is on one of the set's origins.
func (s Set) Allows(u *url.URL) bool { return slices.Contains(s.origins, Of(u)) }

// CheckReturnURL returns nil when raw passes ParseURL and is on one of the
// set's origins: the rule that keeps Stripe's success and cancel redirects
// from being an open redirect. raw is meant to be used verbatim afterwards, so
// Stripe's {CHECKOUT_SESSION_ID} template keeps its braces.
func (s Set) CheckReturnURL(raw string) error {
	u, err := ParseURL(raw)
	if err != nil {
		return err
	}
	if !s.Allows(u) {
		return fmt.Errorf("must be on an allowed origin (%s is not)", Of(u))
	}
	return nil
}
