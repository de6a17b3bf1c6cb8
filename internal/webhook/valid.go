package webhook

import (
	"bytes"
	"encoding/json"
)

// maxNesting is encoding/json's limit on nested objects and arrays.
const maxNesting = 10000

// syntax walks a document, checking as it goes (i is the next byte) that it
// is exactly one JSON value (RFC 8259), with json.Valid's answer for every
// input (FuzzValidJSON holds it to that): strings may hold any byte but
// control characters and bad escapes, as there, and nesting stops at
// encoding/json's 10 000 levels.
//
// It exists for speed alone: the webhook checks the syntax of every verified
// event, and encoding/json's scanner, one function call per byte, cost three
// times the signature check on a 3 KB event.
type syntax struct {
	doc []byte
	i   int
	// member, when set, is told of each member of each object once its value
	// is checked: depth 1 is the top level, arrays count as a level, and
	// name is unquoted.
	member func(depth int, name, value []byte)
}

// check reports whether the whole document is one valid JSON value.
func (s *syntax) check() bool {
	s.space()
	if !s.value(0) {
		return false
	}
	s.space()
	return s.i == len(s.doc)
}

func (s *syntax) value(depth int) bool {
	if s.i >= len(s.doc) {
		return false
	}
	switch c := s.doc[s.i]; {
	case c == '{':
		return depth < maxNesting && s.object(depth+1)
	case c == '[':
		return depth < maxNesting && s.array(depth+1)
	case c == '"':
		return s.string()
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *syntax) object(depth int) bool {
	s.i++ // {
	s.space()
	if s.at('}') {
		s.i++
		return true
	}
	for {
		nameStart := s.i
		if !s.at('"') || !s.string() {
			return false
		}
		nameEnd := s.i
		s.space()
		if !s.at(':') {
			return false
		}
		s.i++
		s.space()
		valueStart := s.i
		if !s.value(depth) {
			return false
		}
		if s.member != nil {
			s.member(depth, unquote(s.doc[nameStart:nameEnd]), s.doc[valueStart:s.i])
		}
		s.space()
		switch {
		case s.at(','):
			s.i++
			s.space()
		case s.at('}'):
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *syntax) array(depth int) bool {
	s.i++ // [
	s.space()
	if s.at(']') {
		s.i++
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		s.space()
		switch {
		case s.at(','):
			s.i++
			s.space()
		case s.at(']'):
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *syntax) string() bool {
	s.i++ // opening quote
	for s.i < len(s.doc) {
		switch c := s.doc[s.i]; {
		case c == '"':
			s.i++
			return true
		case c == '\\':
			if !s.escape() {
				return false
			}
		case c < 0x20:
			return false
		default:
			s.i++
		}
	}
	return false
}

// escape checks the escape sequence at i (its backslash) and moves past it.
func (s *syntax) escape() bool {
	s.i++
	if s.i >= len(s.doc) {
		return false
	}
	switch s.doc[s.i] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.i++
		return true
	case 'u':
		if s.i+4 >= len(s.doc) {
			return false
		}
		for _, h := range s.doc[s.i+1 : s.i+5] {
			if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
				return false
			}
		}
		s.i += 5
		return true
	}
	return false
}

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; what follows
// it is the caller's to check.
func (s *syntax) number() bool {
	if s.at('-') {
		s.i++
	}
	switch {
	case s.at('0'):
		s.i++
	case s.i < len(s.doc) && '1' <= s.doc[s.i] && s.doc[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.at('.') {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if s.at('e') || s.at('E') {
		s.i++
		if s.at('+') || s.at('-') {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits moves past one or more digits, and reports whether there was one.
func (s *syntax) digits() bool {
	start := s.i
	for s.i < len(s.doc) && '0' <= s.doc[s.i] && s.doc[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

func (s *syntax) literal(word string) bool {
	if len(s.doc)-s.i < len(word) || string(s.doc[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

func (s *syntax) at(c byte) bool { return s.i < len(s.doc) && s.doc[s.i] == c }

func (s *syntax) space() {
	for s.i < len(s.doc) {
		switch s.doc[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// unquote returns the content of a valid JSON string; escapes are rare in
// member names, so only then does encoding/json decode it.
func unquote(raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	var s string
	_ = json.Unmarshal(raw, &s) // checked: a valid string
	return []byte(s)
}
