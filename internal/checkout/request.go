package checkout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/acme/payments-api/internal/problem"
)

// Limits on the request.
const (
	MaxBodyBytes          = 16 << 10
	MaxQuantity           = 100
	maxURLLength          = 2048 // far beyond any real return URL; Stripe's own limit is 5000
	maxIdempotencyKeyLen  = 255  // Stripe's limit
	maxEchoedFieldNameLen = 64
)

// request is the body of POST /stripe/checkout. Pointers tell "absent" from
// "present but empty".
type request struct {
	PriceID    string  `json:"price_id"`
	Quantity   *int64  `json:"quantity"`
	SuccessURL *string `json:"success_url"`
	CancelURL  *string `json:"cancel_url"`
}

// checkContentType accepts application/json with at most a UTF-8 charset: JSON
// is UTF-8 (RFC 8259), so any other charset is a client bug.
func checkContentType(r *http.Request) error {
	const want = "Content-Type must be application/json."
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return problem.New(http.StatusUnsupportedMediaType, want)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return problem.New(http.StatusUnsupportedMediaType, want)
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return problem.New(http.StatusUnsupportedMediaType, "Content-Type must be application/json, with no parameter but charset=utf-8.")
		}
	}
	return nil
}

// decodeRequest reads exactly one JSON object with known fields from the body,
// at most MaxBodyBytes of it.
func decodeRequest(w http.ResponseWriter, r *http.Request) (request, error) {
	var req request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, decodeError(err)
	}
	// Anything after the object, even another object, is refused: a body is
	// one request.
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return req, decodeError(err)
		}
		return req, problem.New(http.StatusBadRequest, "The body must hold a single JSON object and nothing after it.")
	}
	return req, nil
}

func decodeError(err error) error {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		wrongType *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return problem.Wrap(http.StatusRequestEntityTooLarge, fmt.Sprintf("The body must be at most %d bytes.", MaxBodyBytes), err)
	case errors.Is(err, io.EOF):
		return problem.New(http.StatusBadRequest, "The body must be a JSON object; it is empty.")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &syntax):
		return problem.Wrap(http.StatusBadRequest, "The body is not valid JSON.", err)
	case errors.As(err, &wrongType):
		if wrongType.Field == "" {
			return problem.Wrap(http.StatusBadRequest, "The body must be a JSON object.", err)
		}
		return problem.Wrap(http.StatusBadRequest, fieldTypeDetail(wrongType.Field), err)
	}
	// encoding/json reports an unknown field only as text: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		if len(name) > maxEchoedFieldNameLen {
			name = name[:maxEchoedFieldNameLen] + "…"
		}
		return problem.Newf(http.StatusBadRequest, "Unknown field %q: the body takes only price_id, quantity, success_url and cancel_url; the user comes from the session token.", name)
	}
	return problem.Wrap(http.StatusBadRequest, "The body is not a valid checkout request.", err)
}

func fieldTypeDetail(field string) string {
	switch field {
	case "quantity":
		return fmt.Sprintf("quantity must be an integer from 1 to %d.", MaxQuantity)
	case "price_id", "success_url", "cancel_url":
		return field + " must be a string."
	}
	return "A field has the wrong type."
}

// checkIdempotencyKey validates the optional Idempotency-Key header and returns
// its value ("" when absent).
func checkIdempotencyKey(h http.Header) (string, error) {
	vs := h.Values("Idempotency-Key")
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", problem.New(http.StatusBadRequest, "Send at most one Idempotency-Key header.")
	}
	k := vs[0]
	if k == "" || len(k) > maxIdempotencyKeyLen || !printableASCII(k) {
		return "", problem.Newf(http.StatusBadRequest, "Idempotency-Key must be 1 to %d printable ASCII characters.", maxIdempotencyKeyLen)
	}
	return k, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// origins is a set of allowed web origins, normalised by origin.
type origins map[string]struct{}

func newOrigins(list []string) (origins, error) {
	o := make(origins, len(list))
	for _, s := range list {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("checkout: allowed origin %q is not an http(s) origin like https://example.com", s)
		}
		o[origin(u)] = struct{}{}
	}
	if len(o) == 0 {
		return nil, errors.New("checkout: no allowed origins")
	}
	return o, nil
}

// origin returns scheme://host[:port] of u, lowercased, without a default port,
// so that https://App.example.com:443 and https://app.example.com are one origin.
func origin(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		return u.Scheme + "://" + net.JoinHostPort(host, port)
	}
	if strings.Contains(host, ":") {
		return u.Scheme + "://[" + host + "]"
	}
	return u.Scheme + "://" + host
}

// check returns nil when raw is an absolute http(s) URL on an allowed origin.
// The URL is used verbatim afterwards, so Stripe's {CHECKOUT_SESSION_ID}
// template keeps its braces.
func (o origins) check(raw string) error {
	if raw == "" || len(raw) > maxURLLength {
		return errors.New("empty or too long")
	}
	// Spaces, control characters and backslashes are where URL parsers disagree
	// (a browser reads https://good\@evil as host evil): refuse them outright,
	// and non-ASCII too, which a browser would have percent-encoded.
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return errors.New("space, control, backslash or non-ASCII character")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("not an absolute http(s) URL")
	}
	if u.Opaque != "" || u.Host == "" || u.User != nil {
		return errors.New("opaque, host-less or with user info")
	}
	if _, ok := o[origin(u)]; !ok {
		return errors.New("origin not allowed")
	}
	return nil
}
