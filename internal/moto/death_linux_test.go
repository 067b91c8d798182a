package moto_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
)

const helperEnv = "MOTO_TEST_HELPER"

// helperStartAndHang is the child process of TestServerDiesWithParent (run
// from TestMain when helperEnv is set): it starts a server, prints its
// address and log file, and blocks until killed.
func helperStartAndHang() {
	srv, err := moto.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ADDR=%s LOG=%s\n", strings.TrimPrefix(srv.URL, "http://"), srv.LogPath)
	os.Stdin.Read(make([]byte, 1)) // the parent never writes: block until killed
	os.Exit(0)
}

// TestServerDiesWithParent SIGKILLs a process that started a server (so
// neither Close nor Main runs) and checks that the server dies with it.
func TestServerDiesWithParent(t *testing.T) {
	mototest.Need(t)
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe() // held open so the helper blocks
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()

	var addr, logPath string
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if _, err := fmt.Sscanf(sc.Text(), "ADDR=%s LOG=%s", &addr, &logPath); err == nil {
			break
		}
	}
	if addr == "" {
		t.Fatal("helper exited without printing the server address")
	}
	defer os.Remove(logPath) // nobody else will: the helper cannot Close

	// On failure, do not leave the orphan behind: it leads its own group.
	children := childPIDs(cmd.Process.Pid)
	t.Cleanup(func() {
		if t.Failed() {
			for _, pid := range children {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})

	// moto keeps an idle connection open for as long as it runs.
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := awaitClose(held); err != nil {
		t.Fatalf("server at %s outlived its parent: held connection: %v", addr, err)
	}
	// The kernel may release the held connection a moment before the
	// listening socket: a new connection must be refused or closed too.
	if c, err := net.Dial("tcp", addr); err == nil {
		defer c.Close()
		if err := awaitClose(c); err != nil {
			t.Fatalf("server at %s outlived its parent: new connection: %v", addr, err)
		}
	}
}

// awaitClose waits up to 15 s for the server to close or reset c.
func awaitClose(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if err == nil {
		return errors.New("server sent data")
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return fmt.Errorf("still open after 15s")
	}
	return nil // EOF or reset
}

// childPIDs lists the children of process pid from /proc.
func childPIDs(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var pids []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(field); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}
