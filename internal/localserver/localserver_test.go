package localserver

import (
	"context"
	"errors"
	"fmt"
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

// TestOnFreePort: a start that exits early (its port taken) is tried again
// on another free port, StartAttempts times at most; any other error, or
// an ended ctx, ends the tries.
func TestOnFreePort(t *testing.T) {
	taken := fmt.Errorf("test server %w", ErrExited)
	bad := errors.New("bad config")
	for _, tt := range []struct {
		name      string
		fails     []error // start's errors, in order, then success
		cancel    bool
		wantTries int
		wantErr   error
	}{
		{"first port", nil, false, 1, nil},
		{"a port taken, then one free", []error{taken}, false, 2, nil},
		{"every port taken", []error{taken, taken, taken, taken}, false, StartAttempts, ErrExited},
		{"another error", []error{bad}, false, 1, bad},
		{"ctx ended", []error{taken}, true, 1, ErrExited},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		if tt.cancel {
			cancel()
		}
		var ports []int
		got, err := OnFreePort(ctx, func(port int) (int, error) {
			ports = append(ports, port)
			if len(ports) <= len(tt.fails) {
				return port, tt.fails[len(ports)-1]
			}
			return port, nil
		})
		cancel()
		if len(ports) != tt.wantTries {
			t.Errorf("%s: %d tries, want %d", tt.name, len(ports), tt.wantTries)
		}
		switch {
		case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.wantErr)
		case tt.wantErr != nil && got != 0:
			t.Errorf("%s: %d with the error, want no value", tt.name, got)
		case tt.wantErr == nil && (err != nil || got <= 0 || got != ports[len(ports)-1]):
			t.Errorf("%s: %d, %v; want the last port tried (%v)", tt.name, got, err, ports)
		}
	}
}
