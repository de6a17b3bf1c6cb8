package chartstest

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

const (
	finalBase = "gcr.io/distroless/static-debian13:nonroot"
	mainPkg   = "./cmd/payments-api"
)

// parseDockerfile parses the repository's Dockerfile with BuildKit's own parser.
func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	for _, w := range ast.Warnings {
		t.Errorf("Dockerfile warning: %s", w.Short)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile instructions: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("got %d stages, want a multi-stage build", len(stages))
	}
	return stages
}

// goBuildRun returns the builder's RUN that runs go build.
func goBuildRun(t *testing.T, stage instructions.Stage) *instructions.RunCommand {
	t.Helper()
	for _, c := range stage.Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			return r
		}
	}
	t.Fatalf("stage %s has no RUN go build", stage.Name)
	return nil
}

// mapEnv is the environment the build flags are expanded in.
type mapEnv map[string]string

func (m mapEnv) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }
func (m mapEnv) Keys() []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// goBuildCommand expands the Dockerfile's go build command line as the shell
// in the builder would, and splits it into its VAR=value prefix and the go
// arguments (without -o and its path).
func goBuildCommand(t *testing.T, run *instructions.RunCommand, env mapEnv) (vars []string, args []string) {
	t.Helper()
	if !run.PrependShell || len(run.CmdLine) != 1 {
		t.Fatalf("go build RUN is not a single shell command: %q", run.CmdLine)
	}
	words, err := shell.NewLex('\\').ProcessWords(run.CmdLine[0], env)
	if err != nil {
		t.Fatalf("expand %q: %v", run.CmdLine[0], err)
	}
	i := 0
	for ; i < len(words) && regexp.MustCompile(`^[A-Z_]+=`).MatchString(words[i]); i++ {
		vars = append(vars, words[i])
	}
	if len(words) < i+2 || words[i] != "go" || words[i+1] != "build" {
		t.Fatalf("go build RUN is %q, want VAR=value… go build …", words)
	}
	rest := words[i+2:]
	for j := 0; j < len(rest); j++ {
		if rest[j] == "-o" {
			j++ // the output path is the test's own
			continue
		}
		args = append(args, rest[j])
	}
	return vars, args
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	builder, final := stages[0], stages[len(stages)-1]

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := regexp.MustCompile(`^golang:` + regexp.QuoteMeta(string(goVersion[1])) + `-(bookworm|trixie)$`); !want.MatchString(builder.BaseName) {
		t.Errorf("builder image %s, want golang:%s-bookworm or -trixie (the go.mod version)", builder.BaseName, goVersion[1])
	}
	if final.BaseName != finalBase {
		t.Errorf("final image %s, want %s", final.BaseName, finalBase)
	}

	// Builder: cached module download before the sources, cache mounts, cross-compilation args.
	var order []string
	args := map[string]bool{}
	for _, c := range builder.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			order = append(order, "COPY "+strings.Join(c.SourcePaths, " "))
		case *instructions.RunCommand:
			line := strings.Join(c.CmdLine, " ")
			order = append(order, "RUN "+line)
			// The mounts are parsed when the command is expanded, as BuildKit does before running it.
			if err := c.Expand(func(w string) (string, error) { return w, nil }); err != nil {
				t.Fatalf("RUN %q: %v", line, err)
			}
			var targets []string
			for _, m := range instructions.GetMounts(c) {
				if m.Type == instructions.MountTypeCache {
					targets = append(targets, m.Target)
				}
			}
			if !slices.Contains(targets, "/go/pkg/mod") {
				t.Errorf("RUN %q has no cache mount on /go/pkg/mod", line)
			}
			if strings.Contains(line, "go build") && !slices.Contains(targets, "/root/.cache/go-build") {
				t.Errorf("go build has no cache mount on /root/.cache/go-build")
			}
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				args[a.Key] = true
			}
		}
	}
	download := slices.IndexFunc(order, func(s string) bool { return strings.Contains(s, "go mod download") })
	mods := slices.Index(order, "COPY go.mod go.sum")
	sources := slices.IndexFunc(order, func(s string) bool { return strings.HasPrefix(s, "COPY ") && s != "COPY go.mod go.sum" })
	if mods < 0 || download < mods || sources < download {
		t.Errorf("builder steps %q: want COPY go.mod go.sum, RUN go mod download, then the sources", order)
	}
	for _, a := range []string{"TARGETOS", "TARGETARCH", "VERSION"} {
		if !args[a] {
			t.Errorf("builder declares no ARG %s", a)
		}
	}
	vars, buildArgs := goBuildCommand(t, goBuildRun(t, builder), mapEnv{"TARGETOS": "linux", "TARGETARCH": "arm64", "VERSION": "v1"})
	for _, v := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"} {
		if !slices.Contains(vars, v) {
			t.Errorf("go build environment %q lacks %s (from TARGETOS/TARGETARCH)", vars, v)
		}
	}
	if !slices.Contains(buildArgs, "-trimpath") || !slices.Contains(buildArgs, "-s -w -X main.version=v1") || buildArgs[len(buildArgs)-1] != mainPkg {
		t.Errorf("go build %q: want -trimpath, -ldflags \"-s -w -X main.version=${VERSION}\" and %s", buildArgs, mainPkg)
	}

	// Final stage: the binary alone, as 65532, exec-form entrypoint and healthcheck.
	var user, entrypoint []string
	var health []string
	var exposed []string
	copied := false
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = append(user, c.User)
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT %q is in shell form; distroless has no shell", c.CmdLine)
			}
			entrypoint = c.CmdLine
		case *instructions.HealthCheckCommand:
			health = c.Health.Test
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.CopyCommand:
			copied = c.From == builder.Name && slices.Equal(c.SourcePaths, []string{"/out/payments-api"}) && c.DestPath == "/payments-api"
		case *instructions.RunCommand:
			t.Errorf("final stage runs %q: distroless has no shell", c.CmdLine)
		}
	}
	if !slices.Equal(user, []string{"65532:65532"}) {
		t.Errorf("USER = %q, want 65532:65532", user)
	}
	if !slices.Equal(entrypoint, []string{"/payments-api"}) {
		t.Errorf("ENTRYPOINT = %q, want [\"/payments-api\"]", entrypoint)
	}
	if len(health) < 3 || health[0] != "CMD" || health[1] != "/payments-api" || health[2] != "healthcheck" {
		t.Errorf("HEALTHCHECK = %q, want exec form CMD [\"/payments-api\", \"healthcheck\"]", health)
	}
	slices.Sort(exposed)
	if !slices.Equal(exposed, []string{"8001", "9090"}) {
		t.Errorf("EXPOSE %q, want 8001 9090", exposed)
	}
	if !copied {
		t.Errorf("final stage does not copy /out/payments-api from %s to /payments-api", builder.Name)
	}
}

// TestDockerContext checks that .dockerignore keeps secrets out of the build
// context and lets in every directory the binary is built from.
func TestDockerContext(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	if len(patterns) == 0 || patterns[0] != "*" {
		t.Fatalf(".dockerignore %q: want `*` first, then the allowed paths", patterns)
	}
	for _, p := range patterns[1:] {
		if strings.HasPrefix(p, "!") && strings.Contains(strings.ToLower(p), "env") {
			t.Errorf(".dockerignore re-includes %s", p)
		}
	}
	// Every package of the module that the binary imports must be in the context.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", mainPkg)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", mainPkg, err, out)
	}
	root, _ := filepath.Abs(repoRoot)
	for _, dir := range strings.Fields(string(out)) {
		rel, _ := filepath.Rel(root, dir)
		top := strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]
		if !slices.Contains(patterns, "!"+top+"/") {
			t.Errorf("package dir %s is outside the Docker build context (.dockerignore allows %q)", rel, patterns[1:])
		}
	}
}

// TestBinaryStatic builds ./cmd/payments-api with the Dockerfile's exact go
// build flags and proves the result static and stamped with its version.
func TestBinaryStatic(t *testing.T) {
	if _, err := os.Stat(filepath.Join(repoRoot, mainPkg, "main.go")); err != nil {
		t.Fatalf("%s: %v", mainPkg, err)
	}
	stages := parseDockerfile(t)
	const version = "v9.8.7-chartstest"
	vars, args := goBuildCommand(t, goBuildRun(t, stages[0]), mapEnv{"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "VERSION": version})
	bin := filepath.Join(t.TempDir(), "payments-api")
	goArgs := append([]string{"build", "-o", bin}, args...)
	cmd := exec.Command("go", goArgs...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), vars...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s go %q: %v\n%s", vars, goArgs, err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a PT_INTERP program header: it needs a dynamic loader")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) != 0 {
		t.Errorf("binary needs shared libraries %q", libs)
	}
	if f.Section(".symtab") != nil {
		t.Error("binary keeps its symbol table: -s was not applied")
	}

	var stdout, stderr bytes.Buffer
	run := exec.Command(bin, "version")
	run.Env = []string{} // version needs no configuration
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("payments-api version: %v\n%s", err, stderr.String())
	}
	if got := strings.TrimSpace(stdout.String()); !strings.Contains(got, version) {
		t.Errorf("payments-api version printed %q, want it to contain %q", got, version)
	}
}
