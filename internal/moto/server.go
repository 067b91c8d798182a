// Package moto starts a local moto_server (an AWS emulator) and builds
// Cognito user pools, users and SQS queues in it, for tests and demos.
//
// Nothing here talks to AWS: the server binds 127.0.0.1 on a free port and
// clients use static test credentials. moto_server itself is a Python program
// (pip install 'moto[server]'); tests reach it through mototest.
package moto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/resetq/resetq/internal/localserver"
)

// Binary is the name of the moto server executable looked up on PATH.
const Binary = "moto_server"

// InstallHint says what to install when Binary is missing.
const InstallHint = "pip install 'moto[server]'"

// ErrNotInstalled is returned by Start when Binary is not on PATH.
var ErrNotInstalled = errors.New(Binary + " not found on PATH; install it with: " + InstallHint)

const (
	readyPath     = "/moto-api/data.json"
	resetPath     = "/moto-api/reset"
	readyTimeout  = 30 * time.Second
	readyInterval = 50 * time.Millisecond
)

// Server is a running moto_server bound to 127.0.0.1 on a free port.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string
	// LogPath is the file that receives moto's stdout and stderr. Close
	// removes it.
	LogPath string

	proc      *localserver.Process
	closeOnce sync.Once
	closeErr  error
}

// Installed reports whether Binary is on PATH.
func Installed() bool {
	_, err := exec.LookPath(Binary)
	return err == nil
}

// Start launches `moto_server -H 127.0.0.1 -p PORT` on a free port and waits
// until it answers GET /moto-api/data.json (at most 30 s, or until ctx ends).
// ctx only bounds the start-up: the server runs until Close.
//
// The process runs in its own process group, which Close kills. On Linux the
// server also receives SIGKILL if the starting process dies without calling
// Close.
func Start(ctx context.Context) (*Server, error) {
	bin, err := exec.LookPath(Binary)
	if err != nil {
		return nil, ErrNotInstalled
	}
	return localserver.OnFreePort(ctx, func(port int) (*Server, error) { return start(ctx, bin, port) })
}

func start(ctx context.Context, bin string, port int) (*Server, error) {
	logFile, err := os.CreateTemp("", "moto-*.log")
	if err != nil {
		return nil, fmt.Errorf("create moto log file: %w", err)
	}
	s := &Server{
		URL:     "http://127.0.0.1:" + strconv.Itoa(port),
		LogPath: logFile.Name(),
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout = logFile
	cmd.Stderr = logFile

	s.proc, err = localserver.Start(cmd)
	logFile.Close() // the child holds its own copy
	if err != nil {
		os.Remove(s.LogPath)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	if err := s.waitReady(ctx); err != nil {
		log := localserver.LogTail(s.LogPath)
		s.Close()
		if log != "" {
			err = fmt.Errorf("%w; log: %s", err, log)
		}
		return nil, err
	}
	return s, nil
}

// waitReady polls the readiness URL until it answers 200, the process exits,
// ctx ends or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(readyInterval)
	defer tick.Stop()
	for {
		if s.ready(ctx, client) {
			return nil
		}
		select {
		case <-s.proc.Exited():
			return fmt.Errorf("moto_server %w (%v)", localserver.ErrExited, s.proc.Err())
		case <-ctx.Done():
			return fmt.Errorf("wait for %s%s: %w", s.URL, readyPath, ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *Server) ready(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+readyPath, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Close kills the server's process group, waits for the server to exit and
// removes its log file. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.proc.Kill()
		if s.closeErr == nil {
			os.Remove(s.LogPath)
		}
	})
	return s.closeErr
}

// Reset wipes all state in the server (POST /moto-api/reset).
func (s *Server) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+resetPath, nil)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset moto: %s", resp.Status)
	}
	return nil
}

// Region is the Region used by Env.
const Region = "us-east-1"

// Account is the account of moto's default credentials (what STS
// GetCallerIdentity answers them); a role's credentials act in the role's.
const Account = "123456789012"

// Env returns environment variables that point an AWS SDK in a child process
// at the server with static test credentials. Append it to os.Environ().
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.URL,
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Config returns an SDK configuration for endpoint (a moto server or a proxy
// in front of it) with static credentials test/test and the given Region.
// For Cognito the Region must match the user pool ID's prefix.
//
// Service-specific environment variables such as AWS_ENDPOINT_URL_SQS still
// take precedence over endpoint, as they do for any SDK client.
func Config(ctx context.Context, endpoint, region string) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithBaseEndpoint(endpoint),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config for %s: %w", endpoint, err)
	}
	return cfg, nil
}
