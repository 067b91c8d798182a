package redisserver_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/resetq/resetq/internal/redisserver"
	"github.com/resetq/resetq/internal/redisserver/redistest"
)

// TestStartSentinel: the Sentinel names the primary, the replica follows
// it, and the URL lists the Sentinel.
func TestStartSentinel(t *testing.T) {
	t.Parallel()
	redistest.NeedSentinel(t)
	s, err := redisserver.StartSentinel(context.Background(), "test", "s3cret", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Addrs) != 1 || s.URL != "redis://:s3cret@"+s.Addrs[0] {
		t.Fatalf("Addrs %v, URL %q", s.Addrs, s.URL)
	}
	if err := s.WaitPrimary(context.Background(), s.Primary.Addr); err != nil {
		t.Error(err)
	}
	out, err := exec.Command(redisserver.CLI, "-a", "s3cret", "--no-auth-warning", "-p", strings.TrimPrefix(s.Replica.Addr, "127.0.0.1:"), "role").Output()
	if err != nil || !strings.HasPrefix(string(out), "slave\n") {
		t.Errorf("the replica's ROLE: %v\n%s", err, out)
	}
}
