package redisserver_test

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/resetq/resetq/internal/redisserver"
	"github.com/resetq/resetq/internal/redisserver/redistest"
)

// TestStartRestartClose: the server answers PING on its own port, stops
// answering after Close, and answers again on the same port after Restart.
func TestStartRestartClose(t *testing.T) {
	t.Parallel()
	redistest.Need(t)
	ctx := context.Background()
	s, err := redisserver.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.URL != "redis://"+s.Addr {
		t.Errorf("URL %q, Addr %q", s.URL, s.Addr)
	}
	if s.Addr == "127.0.0.1:6379" {
		t.Errorf("started on the system Redis's port")
	}
	if err := redisserver.PingPlain(s); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := redisserver.PingPlain(s); err == nil {
		t.Fatal("PING answered after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := redisserver.PingPlain(s); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Errorf("Restart of a running server: %v", err)
	}
}

// TestStartTLS: a TLS server answers PING over TLS checked against its
// CAFile, and not in plain text.
func TestStartTLS(t *testing.T) {
	t.Parallel()
	redistest.NeedTLS(t)
	s, err := redisserver.StartTLS(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.URL != "rediss://"+s.Addr || s.CAFile == "" {
		t.Errorf("URL %q, CAFile %q", s.URL, s.CAFile)
	}
	if err := redisserver.PingTLS(s); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}
	if err := redisserver.PingPlain(s); err == nil {
		t.Error("PING answered in plain text")
	}
}

// TestStartCluster: three nodes agree they are one cluster that serves
// every slot.
func TestStartCluster(t *testing.T) {
	t.Parallel()
	redistest.NeedCluster(t)
	c, err := redisserver.StartCluster(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Nodes) != 3 || c.URL != c.Nodes[0].URL {
		t.Fatalf("%d nodes, URL %q", len(c.Nodes), c.URL)
	}
	out, err := exec.Command(redisserver.CLI, "-p", strconv.Itoa(redisserver.Port(c.Nodes[2])), "cluster", "info").Output()
	if err != nil || !strings.Contains(string(out), "cluster_slots_assigned:16384") || !strings.Contains(string(out), "cluster_known_nodes:3") {
		t.Errorf("CLUSTER INFO: %v\n%s", err, out)
	}
}
