package redisserver

import (
	"context"
	"testing"
)

// TestStartRestartClose: the server answers PING on its own port, stops
// answering after Close, and answers again on the same port after Restart.
func TestStartRestartClose(t *testing.T) {
	Need(t)
	ctx := context.Background()
	s, err := Start(ctx)
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
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ping(s.Addr); err == nil {
		t.Fatal("PING answered after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Errorf("Restart of a running server: %v", err)
	}
}
