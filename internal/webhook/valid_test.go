package webhook

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// validJSON reports whether doc is exactly one JSON value, by the check
// parseEvent makes.
func validJSON(doc []byte) bool {
	s := syntax{doc: doc}
	return s.check()
}

func TestValidJSON(t *testing.T) {
	fixture, err := os.ReadFile("testdata/checkout_session_completed.json")
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{
		string(fixture), `{}`, `[]`, `""`, `0`, `-0.5e+10`, `1E-3`, `true`, `false`, `null`, ` {"a" : [1, {"b": null}] } `,
		`"\u00e9\n\"\\\/\b\f\r\t"`, "\"caf\xc3\xa9 \xff\"",
		``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{a:1}`, `{'a':1}`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`,
		`+1`, `0x10`, `NaN`, `tru`, `truex`, `nul`, `"abc`, `"\x"`, `"\u12g4"`, `"\u123"`, "\"tab\there\"", `1 2`, `{"a":1}}`,
		`[` + strings.Repeat(`[`, maxNesting-1) + strings.Repeat(`]`, maxNesting-1) + `]`,
		strings.Repeat(`[`, maxNesting+1) + strings.Repeat(`]`, maxNesting+1),
	}
	for _, doc := range docs {
		if got, want := validJSON([]byte(doc)), json.Valid([]byte(doc)); got != want {
			t.Errorf("validJSON(%.40q) = %t, json.Valid says %t", doc, got, want)
		}
	}
}

// FuzzValidJSON holds validJSON to json.Valid's answer for any input.
func FuzzValidJSON(f *testing.F) {
	fixture, err := os.ReadFile("testdata/checkout_session_completed.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	for _, s := range []string{`{"a":[1,-2.5e3,true,false,null,"\u00e9"]}`, `[{}]`, `"\\"`, `-0`, `1e+5`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if got, want := validJSON(doc), json.Valid(doc); got != want {
			t.Fatalf("validJSON(%q) = %t, json.Valid says %t", doc, got, want)
		}
	})
}
