package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the root of the payments-api repository, seen from this module.
const repoRoot = "../.."

// readmeInstall is the production install that the README documents: a
// Secret created out of band, `helm install` with its flags, `helm test`.
type readmeInstall struct {
	namespace   string
	secretName  string
	secretKeys  []string // the keys given with --from-literal (the optional --from-file one is left out)
	release     string
	chart       string   // the chart's directory, from the repository root
	installArgs []string // the flags after the chart, the namespace left out
	testRelease string   // the release `helm test` names
}

// parseReadmeInstall reads the install commands from the README's section
// "Production install with helm", so that the test installs exactly what a
// reader would.
func parseReadmeInstall(t *testing.T) readmeInstall {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const heading = "### Production install with helm"
	_, section, ok := strings.Cut(string(b), heading)
	if !ok {
		t.Fatalf("README has no %q section", heading)
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatalf("README section %q has no sh block", heading)
	}
	block, _, _ = strings.Cut(block, "```")

	var r readmeInstall
	for line := range strings.Lines(strings.ReplaceAll(block, "\\\n", " ")) {
		words := shellWords(line)
		switch {
		case len(words) > 4 && words[0] == "kubectl" && slices.Contains(words, "secret"):
			r.namespace, words = withoutNamespace(words[1:])
			if i := slices.Index(words, "generic"); i >= 0 && i+1 < len(words) {
				r.secretName = words[i+1]
			}
			for _, w := range words {
				if lit, ok := strings.CutPrefix(w, "--from-literal="); ok {
					key, _, _ := strings.Cut(lit, "=")
					r.secretKeys = append(r.secretKeys, key)
				}
			}
		case len(words) > 3 && words[0] == "helm" && words[1] == "install":
			r.release, r.chart = words[2], words[3]
			_, r.installArgs = withoutNamespace(words[4:])
		case len(words) > 2 && words[0] == "helm" && words[1] == "test":
			r.testRelease = words[2]
		}
	}
	if r.namespace == "" || r.secretName == "" || len(r.secretKeys) == 0 || r.release == "" || len(r.installArgs) == 0 || r.testRelease == "" {
		t.Fatalf("README's install commands not understood: %+v", r)
	}
	return r
}

// withoutNamespace returns the value of -n or --namespace and the other words.
func withoutNamespace(words []string) (string, []string) {
	var ns string
	var rest []string
	for i := 0; i < len(words); i++ {
		switch w := words[i]; {
		case (w == "-n" || w == "--namespace") && i+1 < len(words):
			ns = words[i+1]
			i++
		case strings.HasPrefix(w, "--namespace="):
			ns = strings.TrimPrefix(w, "--namespace=")
		default:
			rest = append(rest, w)
		}
	}
	return ns, rest
}

// shellWords splits a command line into words as a POSIX shell would for the
// quoting the README uses ('…' and "…"), dropping a trailing comment and the
// optional parts the README writes in [brackets].
func shellWords(line string) []string {
	var words []string
	var word strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case r == '#' && !inWord:
			return dropOptional(words)
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return dropOptional(words)
}

// dropOptional removes the words written as [optional].
func dropOptional(words []string) []string {
	return slices.DeleteFunc(words, func(w string) bool {
		return strings.HasPrefix(w, "[") && strings.HasSuffix(w, "]")
	})
}

func TestShellWords(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"helm install a b -n c", []string{"helm", "install", "a", "b", "-n", "c"}},
		{"  --set 'x={a,b}'  --set y=\"$(z 1)\"\n", []string{"--set", "x={a,b}", "--set", "y=$(z 1)"}},
		{"--set 'a[0].path=/stripe' [--from-file=K=f.pem]", []string{"--set", "a[0].path=/stripe"}},
		{"helm test r # comment", []string{"helm", "test", "r"}},
		{"--set x=''", []string{"--set", "x="}},
	}
	for _, tt := range tests {
		if got := shellWords(tt.line); !slices.Equal(got, tt.want) {
			t.Errorf("shellWords(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}
