package webhook

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// referenceEvent is parseEvent written with encoding/json alone, decoding the
// whole body: the answer parseEvent's walk must always give.
func referenceEvent(body []byte) (event, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return event{}, errNotEvent
	}
	var ev event
	for name, dst := range map[string]*string{"id": &ev.ID, "type": &ev.Type} {
		if raw, ok := members[name]; ok && json.Unmarshal(raw, dst) != nil {
			return event{}, errNotEvent
		}
	}
	if raw, ok := members["data"]; ok && string(raw) != "null" {
		var data map[string]json.RawMessage
		if json.Unmarshal(raw, &data) != nil {
			return event{}, errNotEvent
		}
		obj, ok := data["object"]
		if !ok || (obj[0] != '{' && string(obj) != "null") {
			return event{}, errNotEvent
		}
	}
	if ev.ID == "" || ev.Type == "" {
		return event{}, errMissingFields
	}
	return ev, nil
}

func TestParseEvent(t *testing.T) {
	fixture, err := os.ReadFile("testdata/checkout_session_completed.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, body string
		want       event
		wantErr    error
	}{
		{"realistic event", string(fixture), event{"evt_1QxYtR2eZvKYlo2C8vF3kLmN", "checkout.session.completed"}, nil},
		{"minimal", `{"id":"evt_1","type":"invoice.paid"}`, event{"evt_1", "invoice.paid"}, nil},
		{"spaces everywhere", " {\n\t\"type\" : \"a.b\" ,\r\n \"id\":\"evt_2\" } ", event{"evt_2", "a.b"}, nil},
		{"escaped name and value", `{"\u0069d":"evt_\u0033","type":"x\"y"}`, event{"evt_3", `x"y`}, nil},
		{"last of repeated names wins", `{"id":"evt_a","id":"evt_b","type":"t"}`, event{"evt_b", "t"}, nil},
		{"id inside data is not the event's", `{"data":{"object":{"id":"cs_1","type":"x"}},"type":"t"}`, event{}, errMissingFields},
		{"names are matched exactly", `{"ID":"evt_1","Type":"t"}`, event{}, errMissingFields},
		{"null", `null`, event{}, errMissingFields},
		{"null id", `{"id":null,"type":"t"}`, event{}, errMissingFields},
		{"empty object", `{}`, event{}, errMissingFields},
		{"data null", `{"id":"e","type":"t","data":null}`, event{"e", "t"}, nil},
		{"data.object null", `{"id":"e","type":"t","data":{"object":null}}`, event{"e", "t"}, nil},
		{"data without object", `{"id":"e","type":"t","data":{}}`, event{}, errNotEvent},
		{"data.object a string", `{"id":"e","type":"t","data":{"object":"x"}}`, event{}, errNotEvent},
		{"data an array", `{"id":"e","type":"t","data":[{"object":{}}]}`, event{}, errNotEvent},
		{"id a number", `{"id":42,"type":"t"}`, event{}, errNotEvent},
		{"type an object", `{"id":"e","type":{"x":"}"}}`, event{}, errNotEvent},
		{"array", `[{"id":"e","type":"t"}]`, event{}, errNotEvent},
		{"string", `"{\"id\":\"e\"}"`, event{}, errNotEvent},
		{"truncated", `{"id":"e","type":"t","data":{"object":{}}`, event{}, errNotEvent},
		{"trailing garbage", `{"id":"e","type":"t"} x`, event{}, errNotEvent},
		{"empty", ``, event{}, errNotEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEvent([]byte(tt.body))
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("parseEvent = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
			ref, refErr := referenceEvent([]byte(tt.body))
			if ref != got || !errors.Is(refErr, tt.wantErr) {
				t.Errorf("reference = %+v, %v; the table is wrong", ref, refErr)
			}
		})
	}
}

// FuzzParseEvent holds parseEvent to the answers of encoding/json decoding the
// whole body, for any input.
func FuzzParseEvent(f *testing.F) {
	fixture, err := os.ReadFile("testdata/checkout_session_completed.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	for _, s := range []string{
		`{"id":"e","type":"t","data":{"object":{"a":[1,{"b":"}\\""}]}}}`, `{"\u0069d":"e","type":"t"}`,
		`null`, `[]`, `{"id":1}`, `{"data":{"object":"x"}}`, ` { } `, `{"id":"e","type":"t","x":-1.5e3,"y":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := parseEvent(body)
		want, wantErr := referenceEvent(body)
		if got != want || !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
			t.Fatalf("parseEvent(%q) = %+v, %v; encoding/json says %+v, %v", body, got, err, want, wantErr)
		}
	})
}
