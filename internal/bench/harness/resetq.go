package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one finished resetq process.
type proc struct {
	start, end time.Time
	cpu        time.Duration // user + system
	maxRSSKiB  int64
	err        error
}

// runResetq runs n resetq work processes on q until each exits (the queue
// drained, --exit-when-idle) or timeout, when they are killed. extra is
// appended to each one's arguments.
func (w *world) runResetq(ctx context.Context, q queues, n int, idle, timeout time.Duration, extra ...string) []proc {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type running struct {
		cmd   *exec.Cmd
		start time.Time
		log   string
		err   error
	}
	rs := make([]running, n)
	id := w.seq.Add(1)
	for i := range rs {
		args := append([]string{"work", "--queue-url", q.url, "--dlq-url", q.dlq, "--allow-any-pool",
			"--exit-when-idle", idle.String(), "--metrics-addr", "127.0.0.1:0", "--usage-metrics=false"}, extra...)
		cmd := exec.CommandContext(ctx, w.bin, args...)
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir,
			"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
			"AWS_ENDPOINT_URL_SQS=" + w.proxy.URL,
			"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + w.stub.URL,
		}
		rs[i].log = filepath.Join(w.dir, "resetq-"+strconv.FormatInt(id, 10)+"-"+strconv.Itoa(i)+".log")
		f, err := os.Create(rs[i].log)
		if err != nil {
			rs[i].err = err
			continue
		}
		cmd.Stdout, cmd.Stderr = f, f
		rs[i].start = time.Now()
		rs[i].err = cmd.Start()
		f.Close()
		rs[i].cmd = cmd
	}
	out := make([]proc, n)
	for i, r := range rs {
		p := proc{start: r.start, err: r.err}
		if r.err == nil {
			p.err = r.cmd.Wait()
			p.end = time.Now()
			if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				p.cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
				p.maxRSSKiB = ru.Maxrss
			}
			if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				p.err = fmt.Errorf("killed after %v: %v", timeout, p.err)
			}
			if p.err != nil {
				p.err = fmt.Errorf("resetq %d: %w; log: %s", i, p.err, tail(r.log, 600))
			}
		}
		out[i] = p
	}
	for _, r := range rs {
		if r.err == nil && out[0].err == nil {
			os.Remove(r.log)
		}
	}
	return out
}

// tail is the end of a file, on one line.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// missingFlags says which of flags the help text lacks ("" if none).
func missingFlags(help string, flags ...string) string {
	var missing []string
	for _, f := range flags {
		if !strings.Contains(help, "  "+f+" ") && !strings.Contains(help, "  "+f+"\n") {
			missing = append(missing, "--"+strings.TrimPrefix(f, "-"))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "`resetq work` has no " + strings.Join(missing, ", ") + " yet"
}
