package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Secret is a configuration value that must never reach a log or an error message.
// Its String, GoString and LogValue all print a placeholder.
type Secret string

// Value returns the secret itself, for the one place that uses it.
func (s Secret) Value() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// SecretURL is a connection URL that may carry a password, in its user info or
// its query (DATABASE_URL, REDIS_URL). It prints as its scheme, host and path
// only; the zero SecretURL is unset.
type SecretURL struct {
	raw string
	u   *url.URL
}

// IsSet reports whether the URL was given.
func (s SecretURL) IsSet() bool { return s.u != nil }

// Value returns the URL as written, password included, for the one client
// that connects with it.
func (s SecretURL) Value() string { return s.raw }

// URL returns a copy of the parsed URL, password included.
func (s SecretURL) URL() *url.URL {
	if s.u == nil {
		return nil
	}
	u := *s.u
	return &u
}

// String returns scheme://host/path: where the URL leads, without what
// authenticates to it.
func (s SecretURL) String() string {
	if s.u == nil {
		return ""
	}
	shown := url.URL{Scheme: s.u.Scheme, Host: s.u.Host, Path: s.u.Path}
	return shown.String()
}

// GoString keeps %#v from printing the password.
func (s SecretURL) GoString() string { return s.String() }

// LogValue keeps slog from printing the password.
func (s SecretURL) LogValue() slog.Value { return slog.StringValue(s.String()) }

// secret reads a required secret that starts with prefix.
func (l *loader) secret(name, prefix string) Secret {
	v := strings.TrimSpace(l.getenv(name))
	switch {
	case v == "":
		l.fail(name, "is required")
	case !strings.HasPrefix(v, prefix):
		l.fail(name, "must start with %s", prefix)
	case len(v) == len(prefix):
		l.fail(name, "has nothing after %s", prefix)
	default:
		return Secret(v)
	}
	return ""
}

// stripeKey reads the server's Stripe key: a secret sk_ or restricted rk_
// key; a publishable pk_ key, the classic mistake, is named as such.
func (l *loader) stripeKey(name string) Secret {
	v := strings.TrimSpace(l.getenv(name))
	switch {
	case v == "":
		l.fail(name, "is required (a secret sk_… or restricted rk_… key)")
	case strings.HasPrefix(v, "pk_"):
		l.fail(name, "is a publishable pk_ key; the server needs a secret sk_… or restricted rk_… key")
	case !strings.HasPrefix(v, "sk_") && !strings.HasPrefix(v, "rk_"):
		l.fail(name, "must start with sk_ or rk_")
	case len(v) <= len("sk_"):
		l.fail(name, "is too short to be a Stripe key")
	default:
		return Secret(v)
	}
	return ""
}

// DatabaseURL reads and checks DATABASE_URL alone, for the commands that need
// only the database (migrate, events) and must work without the rest of the
// configuration. For them an unset DATABASE_URL is a problem.
func DatabaseURL(getenv func(string) string) (SecretURL, error) {
	l := loader{getenv: getenv}
	u := l.databaseURL("DATABASE_URL")
	if !u.IsSet() && len(l.problems) == 0 {
		l.fail("DATABASE_URL", "is required (a postgres:// URL)")
	}
	if len(l.problems) > 0 {
		return SecretURL{}, l.problems
	}
	return u, nil
}

// databaseURL reads DATABASE_URL. Its host may be empty: libpq-style URLs
// name a Unix socket in the query (?host=/run/postgresql).
func (l *loader) databaseURL(name string) SecretURL {
	return l.secretURL(name, nil, "postgres", "postgresql")
}

// redisURL reads REDIS_URL: a host, and at most a database number as path.
func (l *loader) redisURL(name string) SecretURL {
	return l.secretURL(name, func(u *url.URL) string {
		if u.Host == "" {
			return "must name a host (e.g. rediss://host:6379)"
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" && strings.Trim(db, "0123456789") != "" {
			return "may have only a database number as its path (e.g. redis://host:6379/0)"
		}
		return ""
	}, "redis", "rediss")
}

// secretURL reads an optional connection URL with one of schemes, then check
// (when not nil) returns what else is wrong with it. The password may be in
// the URL, so no problem line quotes it. Special characters in a password must
// be percent-encoded; unencoded, an @, / or # moves part of the password into
// the path or fragment, which this refuses (String would show the path).
func (l *loader) secretURL(name string, check func(*url.URL) string, schemes ...string) SecretURL {
	v := strings.TrimSpace(l.getenv(name))
	if v == "" {
		return SecretURL{}
	}
	want := strings.Join(schemes, ":// or ") + "://"
	u, err := url.Parse(v)
	switch {
	case err != nil:
		l.fail(name, "is not a valid URL (want %s…; percent-encode special characters in the password)", want)
	case !slices.Contains(schemes, u.Scheme) || u.Opaque != "":
		l.fail(name, "must be a %s… URL", want)
	case u.Fragment != "" || strings.Contains(u.Path, "@"):
		l.fail(name, "is not a valid URL: percent-encode special characters in the password (@ as %%40, / as %%2F, # as %%23)")
	case check != nil && check(u) != "":
		l.fail(name, "%s", check(u))
	default:
		return SecretURL{raw: v, u: u}
	}
	return SecretURL{}
}

// minSecretChars is the shortest NEXTJS_WEBHOOK_SECRET accepted: as many
// characters as `openssl rand -hex 16` prints, so that the signature on
// forwarded events cannot be guessed.
const minSecretChars = 32

// minAdminPasswordChars is the shortest ADMIN_PASSWORD accepted: the admin
// listener can replay and inspect every event.
const minAdminPasswordChars = 16

// nextJSSecret reads the secret that signs forwarded events. It must be long,
// and not the Stripe one: whoever holds the Next.js secret (the frontend, its
// logs, its developers) could otherwise forge events to this service.
func (l *loader) nextJSSecret(name string, stripeSecret Secret) Secret {
	v := strings.TrimSpace(l.getenv(name))
	switch {
	case v == "":
		l.fail(name, "is required (a long random value, e.g. from openssl rand -hex 32)")
	case utf8.RuneCountInString(v) < minSecretChars:
		l.fail(name, "must be at least %d characters long (e.g. openssl rand -hex 32)", minSecretChars)
	case v == stripeSecret.Value():
		l.fail(name, "must differ from STRIPE_WEBHOOK_SECRET: the hop to Next.js needs a secret of its own")
	default:
		return Secret(v)
	}
	return ""
}

// adminCredentials reads the basic-auth user and password of the admin
// listener, both required once it is on.
func (l *loader) adminCredentials(userName, passwordName string) (string, Secret) {
	user := l.get(userName, "")
	switch {
	case user == "":
		l.fail(userName, "is required when ADMIN_ADDR is set")
	case strings.Contains(user, ":"):
		l.fail(userName, "must not contain : (basic auth cannot carry it)")
		user = ""
	}
	password := strings.TrimSpace(l.getenv(passwordName))
	switch {
	case password == "":
		l.fail(passwordName, "is required when ADMIN_ADDR is set")
	case utf8.RuneCountInString(password) < minAdminPasswordChars:
		l.fail(passwordName, "must be at least %d characters long", minAdminPasswordChars)
		password = ""
	}
	return user, Secret(password)
}

// pemKey reads CLERK_JWT_KEY: an RSA public key in PEM, as Clerk's dashboard
// shows it. Literal "\n" sequences are accepted because a multi-line value is
// often flattened that way in .env files.
func (l *loader) pemKey(name string) *rsa.PublicKey {
	v := strings.TrimSpace(strings.ReplaceAll(l.getenv(name), `\n`, "\n"))
	if v == "" {
		return nil
	}
	key, err := parseRSAPublicKey(v)
	if err != nil {
		l.fail(name, "%v", err)
		return nil
	}
	return key
}

// parseRSAPublicKey parses a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1)
// block holding an RSA key of at least 2048 bits. Its errors never quote the input.
func parseRSAPublicKey(s string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("is not a PEM-encoded public key")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("holds a %q PEM block, want PUBLIC KEY", block.Type)
	}
	if err != nil {
		return nil, errors.New("holds an unparsable public key")
	}
	rsaKey, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("is not an RSA public key (Clerk signs with RS256)")
	}
	if rsaKey.N.BitLen() < 2048 {
		return nil, errors.New("is an RSA key shorter than 2048 bits")
	}
	return rsaKey, nil
}
