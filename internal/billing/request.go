package billing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
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

// bodyShape describes a JSON request body to its decoder: the exact JSON
// names of its request struct's fields, and the words of its errors.
type bodyShape struct {
	// fields lists the known fields in a sentence, e.g. "price_id and quantity".
	fields string
	// fieldDetail says what is wrong with a field of the wrong type.
	fieldDetail func(field string) string
	// index maps each JSON name of the struct to its field's index.
	index map[string]int
}

// newBodyShape returns the shape of the request struct T, every field of
// which has a json name; at most 64 fields.
func newBodyShape[T any](fields string, fieldDetail func(field string) string) bodyShape {
	t := reflect.TypeFor[T]()
	if t.NumField() > 64 {
		panic("billing: a request body of more than 64 fields")
	}
	index := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			panic("billing: request field " + t.Field(i).Name + " has no json name")
		}
		index[name] = i
	}
	return bodyShape{fields: fields, fieldDetail: fieldDetail, index: index}
}

// decodeJSON reads exactly one JSON object with known fields from body, which
// http.MaxBytesReader limits to MaxBodyBytes, into dst, a pointer to the
// struct shape describes.
func decodeJSON(body io.Reader, dst any, shape bodyShape) error {
	doc, err := io.ReadAll(body)
	if err != nil {
		return decodeError(err, shape)
	}
	if err := checkKeys(doc, shape); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields() // checkKeys' second line
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, shape)
	}
	// Anything after the object, even another object, is refused: a body is
	// one request.
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return problem.New(http.StatusBadRequest, "The body must hold a single JSON object and nothing after it.")
	}
	return nil
}

// checkKeys checks that every key of the JSON object doc is exactly one of
// shape's fields, once. encoding/json alone takes "PRICE_ID", "Quantity" or
// "ſuccess_url" for price_id, quantity and success_url, and the last of two
// "price_id"s, where the client and any other reader of the same body
// (JSON.parse) see other fields. It reads the first object of doc once,
// without allocating unless a key holds an escape, and leaves whatever is not
// a well-formed object or key to the decoder, which words that error.
func checkKeys(doc []byte, shape bodyShape) error {
	doc = bytes.TrimLeft(doc, " \t\r\n")
	if len(doc) == 0 || doc[0] != '{' {
		return nil
	}
	var (
		seen      uint64 // bit i: field i was given
		depth     int
		expectKey bool // the next string at depth 1 is a key
	)
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '{', '[':
			depth++
			expectKey = depth == 1
		case '}', ']':
			if depth--; depth == 0 {
				return nil // what follows the object is the decoder's
			}
		case ',':
			expectKey = depth == 1
		case '"':
			end := stringEnd(doc, i)
			if end < 0 {
				return nil
			}
			if expectKey {
				expectKey = false
				key, ok := jsonKey(doc[i : end+1])
				if !ok {
					return nil
				}
				f, known := shape.index[string(key)] // no allocation for the lookup
				if !known {
					return unknownField(string(key), shape)
				}
				if seen&(1<<f) != 0 {
					return problem.Newf(http.StatusBadRequest, "Field %q appears twice.", key)
				}
				seen |= 1 << f
			}
			i = end
		}
	}
	return nil
}

// stringEnd returns the index of the quote that ends the JSON string starting
// at doc[start], or -1 when doc ends first.
func stringEnd(doc []byte, start int) int {
	for i := start + 1; i < len(doc); i++ {
		switch doc[i] {
		case '\\':
			i++ // the escaped byte; a \uXXXX's digits need no care
		case '"':
			return i
		}
	}
	return -1
}

// jsonKey returns the JSON string quoted (quotes included) as the text it
// stands for; ok is false when it is no valid JSON string.
func jsonKey(quoted []byte) (key []byte, ok bool) {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return quoted[1 : len(quoted)-1], true
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// unknownField is the 400 for a key that is none of the body's fields; the
// key is echoed, shortened.
func unknownField(name string, shape bodyShape) error {
	if len(name) > maxEchoedFieldNameLen {
		name = name[:maxEchoedFieldNameLen] + "…"
	}
	return problem.Newf(http.StatusBadRequest, "Unknown field %q: the body takes only %s; the user comes from the session token.", name, shape.fields)
}

// decodeError is the problem for a body that could not be decoded into the
// request shape describes.
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
