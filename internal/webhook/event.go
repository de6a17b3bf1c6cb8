package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
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
// two passes of its byte-at-a-time scanner. Here one pass of the syntax
// check, without allocating, also notes where the members of interest
// are; encoding/json still decodes the two strings. FuzzParseEvent holds the
// result to encoding/json's answers.
func parseEvent(body []byte) (event, error) {
	// The raw values of interest; the last of a repeated name wins, as in
	// encoding/json and in the JSON.parse of the Next.js application. Names
	// are matched exactly (encoding/json would also take "ID" for "id").
	var id, typ, data, dataObject, object []byte
	s := syntax{doc: body, member: func(depth int, name, value []byte) {
		switch {
		case depth == 2 && string(name) == "object":
			object = value // data.object, if its parent turns out to be data
		case depth == 1:
			switch string(name) {
			case "id":
				id = value
			case "type":
				typ = value
			case "data":
				data, dataObject = value, object
			}
			object = nil
		}
	}}
	if !s.check() {
		return event{}, errNotEvent
	}
	switch bytes.TrimLeft(body, " \t\r\n")[0] {
	case '{':
	case 'n': // null
		return event{}, errMissingFields
	default:
		return event{}, errNotEvent
	}
	var ev event
	var err error
	ev.ID, err = jsonString(id, nil)
	ev.Type, err = jsonString(typ, err)
	if err = checkData(data, dataObject, err); err != nil {
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
	// A plain string is its own decoding; one with an escape or invalid UTF-8
	// (which encoding/json turns into U+FFFD) goes through encoding/json.
	if len(value) >= 2 && value[0] == '"' && bytes.IndexByte(value, '\\') < 0 && utf8.Valid(value[1:len(value)-1]) {
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
func checkData(data, object []byte, err error) error {
	switch {
	case err != nil || data == nil || string(data) == "null":
		return err
	case data[0] != '{' || object == nil || (object[0] != '{' && string(object) != "null"):
		return errNotEvent
	}
	return nil
}
