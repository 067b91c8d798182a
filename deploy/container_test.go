package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The container build cannot run here (no Docker engine in CI): these tests
// check what it relies on. The binary built as the Dockerfile builds it is
// static and runs in an empty environment (as in distroless/static), and the
// Dockerfile says what the Kubernetes manifests assume.

// staticBuildFlags are the Dockerfile's go build flags.
var staticBuildFlags = []string{"build", "-trimpath", "-ldflags=-s -w"}

// TestContainerBinary builds cmd/resetq as the Dockerfile does (one build:
// -trimpath and CGO_ENABLED=0 miss the usual build cache, so the first run
// compiles the standard library again).
func TestContainerBinary(t *testing.T) {
	t.Parallel()
	bin := buildStatic(t)
	t.Run("static", func(t *testing.T) { t.Parallel(); checkStatic(t, bin) })
	t.Run("empty environment", func(t *testing.T) { t.Parallel(); checkEmptyEnvironment(t, bin) })
}

// checkStatic: with CGO_ENABLED=0 the binary has no ELF interpreter and no
// dynamic section, so it runs on an image without libc.
func checkStatic(t *testing.T, bin string) {
	if runtime.GOOS != "linux" {
		t.Skipf("the image is linux; ELF checks skipped on %s", runtime.GOOS)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %v: the binary is dynamically linked", p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Error("the binary has a .dynamic section")
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
}

// checkEmptyEnvironment: in an environment with no variables
// at all, `resetq version` works, and `resetq work` fails with a clear
// message and exit code 2 (no Region) or 1 (an unreachable queue), never a
// panic.
func checkEmptyEnvironment(t *testing.T, bin string) {
	run := func(env []string, args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env // non-nil: exactly these variables, like env -i
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("resetq %v did not exit within a minute", args)
		}
		if err != nil {
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatalf("resetq %v: %v", args, err)
			}
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	noPanic := func(what, out string) {
		t.Helper()
		if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") || strings.Contains(out, "SIGSEGV") {
			t.Errorf("%s crashed:\n%s", what, out)
		}
	}

	code, out := run([]string{}, "version")
	if code != 0 || !strings.HasPrefix(out, "resetq ") {
		t.Errorf("env -i resetq version: exit %d, output %q", code, out)
	}
	noPanic("version", out)

	code, out = run([]string{}, "work", "--queue-url", "http://127.0.0.1:1/x", "--allow-any-pool", "--metrics-addr", "")
	if code != 2 || !strings.Contains(out, "Region") {
		t.Errorf("env -i resetq work: exit %d, want 2 with a message about the missing Region:\n%s", code, out)
	}
	noPanic("work without a Region", out)

	// With a Region and credentials but nothing listening: a runtime failure.
	code, out = run([]string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_SQS=http://127.0.0.1:1", "AWS_ENDPOINT_URL_STS=http://127.0.0.1:1"},
		"work", "--queue-url", "http://127.0.0.1:1/x", "--allow-any-pool", "--metrics-addr", "")
	if code != 1 && code != 2 {
		t.Errorf("resetq work on an unreachable queue: exit %d, want 1 or 2:\n%s", code, out)
	}
	if !strings.Contains(out, "source queue") {
		t.Errorf("resetq work on an unreachable queue: the message does not say what failed:\n%s", out)
	}
	noPanic("work on an unreachable queue", out)
}

// buildStatic builds cmd/resetq as the Dockerfile does, into a temporary folder.
func buildStatic(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "resetq")
	cmd := exec.Command("go", append(staticBuildFlags, "-o", bin, "./cmd/resetq")...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	return bin
}

// TestDockerfile: a multi-stage build whose builder uses the go.mod Go
// version and the static build flags above, and whose final image is
// distroless nonroot (or scratch) running as the numeric UID 65532 that the
// Kubernetes manifests require, exposing the metrics port, running `work`.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatchIndex(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, found %d FROM lines", len(froms))
	}
	builder := df[froms[0][0]:froms[1][0]]
	final := df[froms[len(froms)-1][0]:]
	finalBase := df[froms[len(froms)-1][2]:froms[len(froms)-1][3]]

	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("no go directive in go.mod")
	}
	if want := "FROM golang:" + string(m[1]); !strings.HasPrefix(builder, want+" ") && !strings.HasPrefix(builder, want+"\n") {
		t.Errorf("the builder is %q, want %s (go.mod's Go)", strings.SplitN(builder, "\n", 2)[0], want)
	}
	build := strings.Join(strings.Fields(strings.ReplaceAll(builder, "\\\n", " ")), " ")
	for _, w := range []string{"CGO_ENABLED=0 go build", "-trimpath", "-ldflags='-s -w'", "./cmd/resetq"} {
		if !strings.Contains(build, w) {
			t.Errorf("the builder stage lacks %q", w)
		}
	}
	if !(strings.HasPrefix(finalBase, "gcr.io/distroless/static") && strings.HasSuffix(finalBase, ":nonroot")) && finalBase != "scratch" {
		t.Errorf("the final image is %s, want distroless static :nonroot or scratch", finalBase)
	}
	for _, re := range []string{`(?m)^USER 65532:65532$`, `(?m)^EXPOSE 9464$`, `(?m)^ENTRYPOINT \["/resetq"\]$`, `(?m)^CMD \["work"\]$`, `(?m)^COPY --from=\S+ \S+ /resetq$`} {
		if !regexp.MustCompile(re).MatchString(final) {
			t.Errorf("the final stage lacks a line matching %s", re)
		}
	}
	if strings.Contains(final, "\nRUN ") {
		t.Error("the final stage runs commands: it has no shell")
	}

	ign, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{".git", "bin"} {
		if !regexp.MustCompile(`(?m)^/?` + regexp.QuoteMeta(w) + `/?$`).Match(ign) {
			t.Errorf(".dockerignore does not exclude %s", w)
		}
	}
	if bytes.Contains(ign, []byte("\ngo.sum")) || bytes.Contains(ign, []byte("\ncmd")) {
		t.Error(".dockerignore excludes what the build needs")
	}
}
