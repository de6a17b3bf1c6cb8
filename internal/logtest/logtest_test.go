package logtest

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestBufferConcurrentWriters(t *testing.T) {
	var b Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				log.Info("request", "route", fmt.Sprintf("/r%d", i), "n", j)
				_ = b.Records(t) // reading while others write
			}
		})
	}
	wg.Wait()
	if got := len(b.Records(t, "msg", "request")); got != 400 {
		t.Errorf("records = %d, want 400", got)
	}
	if got := len(b.Records(t, "msg", "request", "route", "/r3")); got != 50 {
		t.Errorf("records for /r3 = %d, want 50", got)
	}
	if got := b.Records(t, "msg", "other"); got != nil {
		t.Errorf("records for another msg = %v, want none", got)
	}
}

func TestLinesLeavesOutAnUnfinishedLine(t *testing.T) {
	var b Buffer
	fmt.Fprint(&b, "one\ntwo\nthr")
	if got, want := strings.Join(b.Lines(), "|"), "one|two"; got != want {
		t.Errorf("Lines = %q, want %q", got, want)
	}
	fmt.Fprint(&b, "ee\n")
	if got, want := strings.Join(b.Lines(), "|"), "one|two|three"; got != want {
		t.Errorf("Lines = %q, want %q", got, want)
	}
	if got, want := b.String(), "one\ntwo\nthree\n"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestFirst(t *testing.T) {
	var b Buffer
	fmt.Fprint(&b, `{"msg":"listening","addr":"a"}`+"\n"+`{"msg":"listening","addr":"b"}`+"\n"+`{"msg":"req`)
	if got := b.First(t, "msg", "listening"); got["addr"] != "a" {
		t.Errorf("First = %v, want the line with addr a", got)
	}
	if got := b.First(t, "msg", "request"); got != nil {
		t.Errorf("First of an unfinished line = %v, want nil", got)
	}
	if got := b.First(t, "level", "INFO"); got != nil {
		t.Errorf("First without the key = %v, want nil", got)
	}
}

// fatalTB records a Fatalf and stops the calling function, as testing does.
type fatalTB struct {
	testing.TB
	msg string
}

type stopped struct{}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func fatalOf(fn func(tb testing.TB)) (msg string) {
	tb := &fatalTB{}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopped); !ok {
				panic(r)
			}
			msg = tb.msg
		}
	}()
	fn(tb)
	return ""
}

func TestRecordsFailsTheTest(t *testing.T) {
	tests := []struct {
		name, written string
		kv            []string
		want          string // in the failure message; "" for none
	}{
		{"text line", "level=INFO msg=hi\n", nil, "not a JSON object"},
		{"odd pairs", `{"msg":"hi"}` + "\n", []string{"msg"}, "key, value pairs"},
		{"json lines", `{"msg":"hi"}` + "\n", []string{"msg", "hi"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Buffer
			fmt.Fprint(&b, tt.written)
			got := fatalOf(func(tb testing.TB) { b.Records(tb, tt.kv...) })
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("failure = %q, want one containing %q", got, tt.want)
			}
		})
	}
}
