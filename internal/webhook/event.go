package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
)

// event is what routing needs of a Stripe event. The body itself travels as
// the raw bytes that were signed; nothing else of it is decoded.
type event struct {
	ID   string
	Type string
}

var (
	errNotEvent      = errors.New("not a Stripe event")
	errMissingFields = errors.New("event without id or type")
)

// parseEvent reads id and type out of a verified event body. It refuses what
// stripe-go's full decoding refused (not JSON, not an object, an id or type
// that is not a string, a data.object that is not an object), so that Stripe
// sees the same answers; it accepts any API version.
//
// Decoding the whole event into stripe.Event (maps of maps) cost 30 times the
// signature check for a 3 KB event, and even a small struct costs encoding/json
// two passes of its byte-at-a-time scanner. Here validJSON checks the syntax in
// one pass without allocating, and a walk over the members of the now valid
// object picks out the two strings; encoding/json still decodes those.
// FuzzParseEvent holds the result to encoding/json's answers.
func parseEvent(body []byte) (event, error) {
	if !validJSON(body) {
		return event{}, errNotEvent
	}
	var id, typ, data []byte // raw values; the last of a repeated name wins
	isObject := eachMember(body, func(name, value []byte) {
		switch string(name) {
		case "id":
			id = value
		case "type":
			typ = value
		case "data":
			data = value
		}
	})
	if !isObject {
		if string(bytes.TrimSpace(body)) == "null" {
			return event{}, errMissingFields
		}
		return event{}, errNotEvent
	}
	var ev event
	var err error
	ev.ID, err = jsonString(id, nil)
	ev.Type, err = jsonString(typ, err)
	if err = checkData(data, err); err != nil {
		return event{}, err
	}
	if ev.ID == "" || ev.Type == "" {
		return event{}, errMissingFields
	}
	return ev, nil
}

// jsonString decodes a member's value as a string; an absent member or null
// is "". An earlier err is kept.
func jsonString(value []byte, err error) (string, error) {
	if err != nil || value == nil {
		return "", err
	}
	if len(value) >= 2 && value[0] == '"' && bytes.IndexByte(value, '\\') < 0 {
		return string(value[1 : len(value)-1]), nil
	}
	var s string
	if json.Unmarshal(value, &s) != nil {
		return "", errNotEvent
	}
	return s, nil
}

// checkData refuses a data member that is not an object (or null), or whose
// object member is missing or not an object (or null), as stripe-go did.
func checkData(value []byte, err error) error {
	if err != nil || value == nil || string(value) == "null" {
		return err
	}
	found := false
	isObject := eachMember(value, func(name, v []byte) {
		if string(name) == "object" {
			found = v[0] == '{' || string(v) == "null"
		}
	})
	if !isObject || !found {
		return errNotEvent
	}
	return nil
}

// eachMember calls f with the name and the raw value of each member of the
// JSON object doc, in order, and reports whether doc is an object. Names are
// matched exactly, as JavaScript's JSON.parse in the Next.js application reads
// them (encoding/json would also match "ID" to "id"); a repeated name is seen
// each time, so the last one wins, as there. doc must be valid JSON
// (json.Valid): the walk only finds where members start and end.
func eachMember(doc []byte, f func(name, value []byte)) bool {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return false
	}
	i++
	for {
		i = skipSpace(doc, i)
		if doc[i] == '}' {
			return true
		}
		keyEnd := skipValue(doc, i)
		valStart := skipSpace(doc, skipSpace(doc, keyEnd)+1) // past the colon
		valEnd := skipValue(doc, valStart)
		f(memberName(doc[i:keyEnd]), doc[valStart:valEnd])
		i = skipSpace(doc, valEnd)
		if doc[i] == ',' {
			i++
		}
	}
}

// skipValue returns the index just past the valid JSON value starting at i.
func skipValue(doc []byte, i int) int {
	switch doc[i] {
	case '"':
		return skipString(doc, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch doc[i] {
			case '"':
				i = skipString(doc, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
	default: // number, true, false, null
		for i < len(doc) {
			switch doc[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}

// memberName unquotes a raw member name; escapes are rare, so only then does
// encoding/json decode it.
func memberName(raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	var s string
	_ = json.Unmarshal(raw, &s) // valid JSON: a string
	return []byte(s)
}

// skipString returns the index just past the string whose opening quote is at i.
func skipString(doc []byte, i int) int {
	for i++; ; i++ {
		switch doc[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) && (doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\r' || doc[i] == '\n') {
		i++
	}
	return i
}
