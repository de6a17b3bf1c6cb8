package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// pemKey validates CLERK_JWT_KEY: an RSA public key in PEM, as Clerk's dashboard
// shows it. Literal "\n" sequences are accepted because a multi-line value is
// often flattened that way in .env files.
func (l *loader) pemKey(name string) Secret {
	v := strings.TrimSpace(strings.ReplaceAll(l.getenv(name), `\n`, "\n"))
	if v == "" {
		return ""
	}
	if _, err := ParseRSAPublicKey(v); err != nil {
		l.fail(name, "%v", err)
		return ""
	}
	return Secret(v)
}

// ParseRSAPublicKey parses a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1)
// block holding an RSA key of at least 2048 bits. Its errors never quote the input.
func ParseRSAPublicKey(s string) (*rsa.PublicKey, error) {
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
