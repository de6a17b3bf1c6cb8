package origin

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://app.example.com/x", "https://app.example.com"},
		{"HTTPS://App.Example.COM/x", "https://app.example.com"},
		{"https://app.example.com:443/x", "https://app.example.com"},
		{"http://app.example.com:80/x", "http://app.example.com"},
		{"http://app.example.com:443/x", "http://app.example.com:443"},
		{"https://app.example.com:80/x", "https://app.example.com:80"},
		{"https://app.example.com:/x", "https://app.example.com"}, // an empty port is the default one
		{"http://localhost:3000", "http://localhost:3000"},
		{"http://[::1]:8080/x", "http://[::1]:8080"},
		{"http://[::1]:80/x", "http://[::1]"},
		{"https://[2001:DB8::1]/x", "https://[2001:db8::1]"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := Of(u); got != tt.want {
			t.Errorf("Of(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		name, raw string
		want      string // substring of the error; "" for none
	}{
		{"https", "https://app.example.com/x?session_id={CHECKOUT_SESSION_ID}", ""},
		{"http with port", "http://localhost:3000/pricing", ""},
		{"percent-encoded", "https://app.example.com/caf%C3%A9?q=a%20b", ""},
		{"fragment", "https://app.example.com/#/done", ""},
		{"upper-case scheme", "HTTPS://app.example.com/", ""},
		{"empty", "", "must not be empty"},
		{"too long", "https://app.example.com/" + strings.Repeat("a", MaxURLLength), "at most 2048 bytes"},
		{"space", "https://app.example.com/a b", "space"},
		{"tab in host", "https://app.example\t.com/", "control character"},
		{"newline", "https://app.example.com/a\nb", "control character"},
		{"DEL", "https://app.example.com/a\x7fb", "control character"},
		{"backslash in path", `https://app.example.com/a\b`, "backslash"},
		{"backslash before @", `https://app.example.com\@evil.example/`, "backslash"},
		{"non-ASCII path", "https://app.example.com/café", "non-ASCII"},
		{"non-ASCII host", "https://аpp.example.com/", "non-ASCII"},
		{"relative", "/checkout/success", "http:// or https://"},
		{"protocol-relative", "//evil.example/x", "http:// or https://"},
		{"javascript", "javascript:alert(1)", "http:// or https://"},
		{"javascript with slashes", "JaVaScRiPt://app.example.com/%0aalert(1)", "http:// or https://"},
		{"ftp", "ftp://app.example.com/", "http:// or https://"},
		{"unparsable", "https://app.example.com:port/", "not a valid URL"},
		{"opaque", "https:app.example.com/x", "with a host"},
		{"no host", "https:///app.example.com/x", "with a host"},
		{"port only", "https://:443/x", "with a host"},
		{"credentials", "https://evil@app.example.com/", "credentials"},
		{"host as credentials", "https://app.example.com@evil.example/", "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseURL(tt.raw)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ParseURL(%q) = %v, want nil", tt.raw, err)
			case tt.want != "" && err == nil:
				t.Errorf("ParseURL(%q) accepted, want an error saying %q", tt.raw, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("ParseURL(%q) = %v, want it to say %q", tt.raw, err, tt.want)
			}
		})
	}
}

func TestNewSet(t *testing.T) {
	tests := []struct {
		name string
		list []string
		want []string // normalised origins; nil when refused
		err  string   // substring of the error when refused
	}{
		{"one", []string{"https://app.example.com"}, []string{"https://app.example.com"}, ""},
		{"normalised and deduplicated", []string{"https://App.Example.com:443", "https://app.example.com/", "http://localhost:3000/"},
			[]string{"https://app.example.com", "http://localhost:3000"}, ""},
		{"IPv6", []string{"http://[::1]:8080"}, []string{"http://[::1]:8080"}, ""},
		{"empty", nil, nil, "at least one origin"},
		{"wildcard", []string{"*"}, nil, "wildcards are refused"},
		{"wildcard subdomain", []string{"https://app.example.com", "https://*.example.com"}, nil, `"https://*.example.com" is a wildcard`},
		{"path", []string{"https://app.example.com/app"}, nil, "without path"},
		{"double slash", []string{"https://app.example.com//"}, nil, "without path"},
		{"query", []string{"https://app.example.com/?x=1"}, nil, "without path"},
		{"empty query", []string{"https://app.example.com?"}, nil, "without path"},
		{"fragment", []string{"https://app.example.com#x"}, nil, "without path"},
		{"no scheme", []string{"app.example.com"}, nil, "http:// or https://"},
		{"empty item", []string{""}, nil, "must not be empty"},
		{"credentials", []string{"https://u:p@app.example.com"}, nil, "credentials"},
		{"non-ASCII host", []string{"https://аpp.example.com"}, nil, "non-ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSet(tt.list)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("NewSet(%q) error = %v, want it to say %q", tt.list, err, tt.err)
				}
				if s.Len() != 0 {
					t.Errorf("NewSet(%q) refused but holds %v", tt.list, s.List())
				}
				return
			}
			if err != nil {
				t.Fatalf("NewSet(%q): %v", tt.list, err)
			}
			if got := s.List(); !slices.Equal(got, tt.want) {
				t.Errorf("NewSet(%q).List() = %q, want %q", tt.list, got, tt.want)
			}
		})
	}
}

func TestCheckReturnURL(t *testing.T) {
	s, err := NewSet([]string{"https://App.Example.com:443", "http://localhost:3000/", "http://[::1]:8080"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		raw  string
		want string // substring of the error; "" for allowed
	}{
		{"https://app.example.com/x", ""},
		{"HTTPS://APP.EXAMPLE.COM/x", ""},
		{"https://app.example.com:443/x?session_id={CHECKOUT_SESSION_ID}", ""},
		{"http://localhost:3000", ""},
		{"http://[::1]:8080/x", ""},
		{"https://app.example.com#frag", ""}, // checkout lets a client's URL carry one
		{"http://localhost/x", "(http://localhost is not)"},
		{"http://[::1]/x", "(http://[::1] is not)"},
		{"http://localhost:3001/x", "allowed origin"},
		{"https://localhost:3000/x", "allowed origin"},
		{"http://127.0.0.1:3000/x", "allowed origin"},
		{"https://app.example.com:8443/x", "allowed origin"},
		{"https://app.example.com./x", "allowed origin"},
		{"https://app.example.com.evil.example/x", "allowed origin"},
		// Form is checked before the origin: each of these would otherwise
		// pass as a URL on app.example.com.
		{`https://app.example.com\@evil.example/x`, "backslash"},
		{"https://app.example.com/café", "non-ASCII"},
		{"https://evil@app.example.com/x", "credentials"},
	}
	for _, tt := range tests {
		err := s.CheckReturnURL(tt.raw)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckReturnURL(%q) = %v, want nil", tt.raw, err)
		case tt.want != "" && err == nil:
			t.Errorf("CheckReturnURL(%q) allowed, want an error saying %q", tt.raw, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("CheckReturnURL(%q) = %v, want it to say %q", tt.raw, err, tt.want)
		}
	}
	if err := (Set{}).CheckReturnURL("https://app.example.com/"); err == nil {
		t.Error("the zero Set allowed a URL")
	}
}
