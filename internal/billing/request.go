package billing

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/acme/payments-api/internal/problem"
)

// Limits on the request.
const (
	MaxBodyBytes          = 16 << 10
	MaxQuantity           = 100
	maxIdempotencyKeyLen  = 255 // Stripe's limit
	maxEchoedFieldNameLen = 64
)

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

// bodyShape describes a JSON request body to its decoder, for the errors it
// sends back.
type bodyShape struct {
	// fields lists the known fields in a sentence, e.g. "price_id and quantity".
	fields string
	// fieldDetail says what is wrong with a field of the wrong type.
	fieldDetail func(field string) string
}

// decodeJSON reads exactly one JSON object with known fields from body, which
// http.MaxBytesReader limits to MaxBodyBytes, into dst.
func decodeJSON(body io.Reader, dst any, shape bodyShape) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, shape)
	}
	// Anything after the object, even another object, is refused: a body is
	// one request.
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err, shape)
		}
		return problem.New(http.StatusBadRequest, "The body must hold a single JSON object and nothing after it.")
	}
	return nil
}

func decodeError(err error, shape bodyShape) error {
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
		return problem.Wrap(http.StatusBadRequest, shape.fieldDetail(wrongType.Field), err)
	}
	// encoding/json reports an unknown field only as text: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		if len(name) > maxEchoedFieldNameLen {
			name = name[:maxEchoedFieldNameLen] + "…"
		}
		return problem.Newf(http.StatusBadRequest, "Unknown field %q: the body takes only %s; the user comes from the session token.", name, shape.fields)
	}
	return problem.Wrap(http.StatusBadRequest, "The body is not a valid request.", err)
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
