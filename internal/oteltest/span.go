package oteltest

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Span is one received span, decoded into plain values.
type Span struct {
	TraceID      string // 32 hex digits
	SpanID       string // 16 hex digits
	ParentSpanID string // "" for the root of a trace
	Name         string
	Kind         string // "internal", "server", "client", "producer" or "consumer"
	Scope        string // the instrumentation scope's name
	// Attributes and Resource hold string, int64, float64, bool, []byte, []any
	// and map[string]any values.
	Attributes    map[string]any
	Resource      map[string]any
	Links         []Link
	Status        string // "unset", "ok" or "error"
	StatusMessage string
	Start, End    time.Time
}

// Link is a span's link to another span.
type Link struct{ TraceID, SpanID string }

// Attr returns the span attribute key, or nil.
func (s Span) Attr(key string) any { return s.Attributes[key] }

// LinksTo reports whether s has a link to other.
func (s Span) LinksTo(other Span) bool {
	return slices.Contains(s.Links, Link{TraceID: other.TraceID, SpanID: other.SpanID})
}

// Traceparent is the W3C traceparent header that names s as the parent of a
// sampled call: what a service that s called received.
func (s Span) Traceparent() string { return "00-" + s.TraceID + "-" + s.SpanID + "-01" }

func decode(req *coltracepb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				span := Span{
					TraceID:       hex.EncodeToString(s.GetTraceId()),
					SpanID:        hex.EncodeToString(s.GetSpanId()),
					ParentSpanID:  hex.EncodeToString(s.GetParentSpanId()),
					Name:          s.GetName(),
					Kind:          kindName(s.GetKind()),
					Scope:         ss.GetScope().GetName(),
					Attributes:    attrs(s.GetAttributes()),
					Resource:      res,
					Status:        statusName(s.GetStatus().GetCode()),
					StatusMessage: s.GetStatus().GetMessage(),
					Start:         time.Unix(0, int64(s.GetStartTimeUnixNano())),
					End:           time.Unix(0, int64(s.GetEndTimeUnixNano())),
				}
				for _, l := range s.GetLinks() {
					span.Links = append(span.Links, Link{
						TraceID: hex.EncodeToString(l.GetTraceId()),
						SpanID:  hex.EncodeToString(l.GetSpanId()),
					})
				}
				out = append(out, span)
			}
		}
	}
	return out
}

func kindName(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	default:
		return "internal"
	}
}

func statusName(c tracepb.Status_StatusCode) string {
	switch c {
	case tracepb.Status_STATUS_CODE_OK:
		return "ok"
	case tracepb.Status_STATUS_CODE_ERROR:
		return "error"
	default:
		return "unset"
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = value(kv.GetValue())
	}
	return out
}

func value(v *commonpb.AnyValue) any {
	switch v := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return v.StringValue
	case *commonpb.AnyValue_IntValue:
		return v.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return v.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return v.BoolValue
	case *commonpb.AnyValue_BytesValue:
		return v.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range v.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrs(v.KvlistValue.GetValues())
	default:
		return nil
	}
}

// Tree describes a span and, under it, spans expected among its children.
type Tree struct {
	Name string
	// Kind, when not empty, must equal the span's.
	Kind string
	// Attributes must each be on the span, equal once printed (so that 200
	// matches the int64 an attribute decodes to).
	Attributes map[string]any
	// Children must each match a different child of the span; other children
	// may exist.
	Children []Tree
	// Bind, when not nil, receives the span that matched.
	Bind *Span
}

// Match reports whether spans hold a span matching want, with its children as
// want describes, and binds the matching spans (Tree.Bind). The first match in
// arrival order wins.
func Match(spans []Span, want Tree) bool {
	children := make(map[string][]Span)
	for _, s := range spans {
		if s.ParentSpanID != "" {
			k := s.TraceID + s.ParentSpanID
			children[k] = append(children[k], s)
		}
	}
	for _, s := range spans {
		if bound, ok := matchSpan(s, want, children); ok {
			for _, b := range bound {
				*b.to = b.span
			}
			return true
		}
	}
	return false
}

type binding struct {
	to   *Span
	span Span
}

func matchSpan(s Span, want Tree, children map[string][]Span) ([]binding, bool) {
	if s.Name != want.Name || (want.Kind != "" && want.Kind != s.Kind) {
		return nil, false
	}
	for k, v := range want.Attributes {
		got, ok := s.Attributes[k]
		if !ok || fmt.Sprint(got) != fmt.Sprint(v) {
			return nil, false
		}
	}
	bound, ok := matchChildren(children[s.TraceID+s.SpanID], want.Children, map[string]bool{}, children)
	if !ok {
		return nil, false
	}
	if want.Bind != nil {
		bound = append(bound, binding{to: want.Bind, span: s})
	}
	return bound, true
}

// matchChildren assigns each wanted child a different candidate, backtracking
// when an early choice leaves a later want without one.
func matchChildren(candidates []Span, wants []Tree, used map[string]bool, children map[string][]Span) ([]binding, bool) {
	if len(wants) == 0 {
		return nil, true
	}
	for _, c := range candidates {
		if used[c.SpanID] {
			continue
		}
		bound, ok := matchSpan(c, wants[0], children)
		if !ok {
			continue
		}
		used[c.SpanID] = true
		if rest, ok := matchChildren(candidates, wants[1:], used, children); ok {
			return append(bound, rest...), true
		}
		delete(used, c.SpanID)
	}
	return nil, false
}

// Format prints spans as indented trees, one trace after another: each span's
// name, kind, duration, status, every attribute, its links, and its trace and
// span ids.
func Format(spans []Span) string {
	return forest(spans, func(s Span) string {
		var b strings.Builder
		b.WriteString(headline(s))
		for _, k := range slices.Sorted(maps.Keys(s.Attributes)) {
			fmt.Fprintf(&b, " %s=%v", k, s.Attributes[k])
		}
		for _, l := range s.Links {
			fmt.Fprintf(&b, " link=%s/%s", l.TraceID, l.SpanID)
		}
		fmt.Fprintf(&b, " (trace %s span %s)", s.TraceID, s.SpanID)
		return b.String()
	})
}

// Outline prints spans as indented trees for a person to read: each span's
// name, kind, duration and status, only the attributes named by keys, and
// "linked" when it has links; the trace id follows each root.
func Outline(spans []Span, keys ...string) string {
	return forest(spans, func(s Span) string {
		var b strings.Builder
		b.WriteString(headline(s))
		for _, k := range keys {
			if v, ok := s.Attributes[k]; ok {
				fmt.Fprintf(&b, " %s=%v", k, v)
			}
		}
		if len(s.Links) > 0 {
			fmt.Fprintf(&b, " linked to trace %s", s.Links[0].TraceID)
		}
		if s.ParentSpanID == "" {
			fmt.Fprintf(&b, " (trace %s)", s.TraceID)
		}
		return b.String()
	})
}

// headline is a span's name, kind, duration, and status when it was set.
func headline(s Span) string {
	h := fmt.Sprintf("%s [%s, %v", s.Name, s.Kind, s.End.Sub(s.Start).Round(time.Microsecond))
	if s.Status == "error" || s.Status == "ok" {
		h += fmt.Sprintf(", %s %q", s.Status, s.StatusMessage)
	}
	return h + "]"
}

// forest writes one line per span, indented under its parent; spans whose
// parent is not among spans start a tree of their own.
func forest(spans []Span, line func(Span) string) string {
	present := make(map[string]bool, len(spans))
	for _, s := range spans {
		present[s.TraceID+s.SpanID] = true
	}
	children := make(map[string][]Span)
	var roots []Span
	for _, s := range spans {
		if k := s.TraceID + s.ParentSpanID; s.ParentSpanID != "" && present[k] {
			children[k] = append(children[k], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var write func(s Span, depth int)
	write = func(s Span, depth int) {
		b.WriteString(strings.Repeat("  ", depth) + line(s) + "\n")
		for _, c := range children[s.TraceID+s.SpanID] {
			write(c, depth+1)
		}
	}
	for _, r := range roots {
		write(r, 0)
	}
	return b.String()
}
