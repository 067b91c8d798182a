package localserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if port <= 0 || port > 65535 {
		t.Fatalf("port %d", port)
	}
}

// TestStartKill: Kill stops a running process and its children, and a
// second Kill of the exited process is not an error.
func TestStartKill(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sh is not on PATH; with CI=true a missing tool is an error")
		}
		t.Skip("sh is not on PATH; with CI=true this fails")
	}
	// The shell waits for its child: Kill must kill the whole group.
	p, err := Start(exec.Command("sh", "-c", "sleep 60 & wait"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
		t.Fatalf("exited early: %v", p.Err())
	default:
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited not closed after Kill")
	}
	if p.Err() == nil {
		t.Error("Err is nil for a killed process")
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	if _, err := Start(exec.Command(filepath.Join(t.TempDir(), "missing"))); err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if got := LogTail(path); got != "" {
		t.Errorf("missing file: %q", got)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("x", 3000)+"end\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := LogTail(path)
	if len(got) > 2000 || !strings.HasSuffix(got, "end") {
		t.Errorf("tail of %d bytes ending %q", len(got), got[len(got)-5:])
	}
}

// TestMetricsAddr: where resetq serves /metrics, from its log in text or
// JSON.
func TestMetricsAddr(t *testing.T) {
	for _, line := range []string{
		`time=2026-12-05T12:00:00Z level=INFO msg="serving metrics" addr=127.0.0.1:40123`,
		`{"time":"2026-12-05T12:00:00Z","level":"INFO","msg":"serving metrics","addr":"127.0.0.1:40123"}`,
	} {
		addr, ok := MetricsAddr([]byte("worker starting\n" + line + "\n"))
		if !ok || addr != "127.0.0.1:40123" {
			t.Errorf("%s: found %q (%v), want 127.0.0.1:40123", line, addr, ok)
		}
	}
	if addr, ok := MetricsAddr([]byte("worker starting\n")); ok {
		t.Errorf("a log without the line: found %q", addr)
	}
}
