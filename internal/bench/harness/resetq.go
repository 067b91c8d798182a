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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/resetq/resetq/internal/localserver"
)

// proc is one finished resetq process.
type proc struct {
	start, end time.Time
	cpu        time.Duration // user + system
	maxRSSKiB  int64
	err        error
	gauges     []gauge // its pacing gauges every second, with world.gauges
}

// replica is when one resetq process of a run starts and, if stop > 0,
// when it is sent SIGTERM (a replica removed mid-run), or SIGKILL if kill
// (a crash: no exit), both from the run's start.
type replica struct {
	start, stop time.Duration
	kill        bool
}

// runReplicas runs resetq work processes on q, each started and stopped
// as plan says, until each exits (the queue drained, --exit-when-idle) or
// timeout, when they are killed. extra is appended to each one's
// arguments.
func (w *world) runReplicas(ctx context.Context, q queues, plan []replica, idle, timeout time.Duration, extra ...string) []proc {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id := w.seq.Add(1)
	out := make([]proc, len(plan))
	logs := make([]string, len(plan))
	var wg sync.WaitGroup
	dir := w.dir
	if w.keepLogs != "" {
		dir = w.keepLogs
	}
	// The run's replicas share a --state-dir (their record of calls per
	// minute: a replica that restarts finds its predecessor's); no other
	// run's calls are in it.
	state, err := os.MkdirTemp(w.dir, "state-")
	if err != nil {
		for i := range out {
			out[i].err = err
		}
		return out
	}
	defer os.RemoveAll(state)
	for i, rp := range plan {
		logs[i] = filepath.Join(dir, "resetq-"+strconv.FormatInt(id, 10)+"-"+strconv.Itoa(i)+".log")
		wg.Go(func() { out[i] = w.runOne(ctx, q, rp, logs[i], state, idle, timeout, extra) })
	}
	wg.Wait()
	for i := range out {
		if out[i].err != nil {
			out[i].err = fmt.Errorf("resetq %d: %w; log: %s", i, out[i].err, tail(logs[i], 600))
		}
	}
	if out[0].err == nil && w.keepLogs == "" {
		for _, l := range logs {
			os.Remove(l)
		}
	}
	return out
}

// runOne runs one process of runReplicas.
func (w *world) runOne(ctx context.Context, q queues, rp replica, log, state string, idle, timeout time.Duration, extra []string) proc {
	sleep(ctx, rp.start)
	if ctx.Err() != nil {
		return proc{err: ctx.Err()}
	}
	// Usage metrics are off unless extra turns them on (the last flag
	// wins); the stand-in serves them (AWS_ENDPOINT_URL_CLOUDWATCH).
	args := append([]string{"work", "--queue-url", q.url, "--dlq-url", q.dlq, "--allow-any-pool",
		"--exit-when-idle", idle.String(), "--metrics-addr", "127.0.0.1:0", "--usage-metrics=false"}, extra...)
	cmd := exec.CommandContext(ctx, w.bin, args...)
	cmd.Env = append(w.processEnv(), "RESETQ_STATE_DIR="+state)
	f, err := os.Create(log)
	if err != nil {
		return proc{err: err}
	}
	cmd.Stdout, cmd.Stderr = f, f
	p := proc{start: time.Now()}
	// In its own process group, and on Linux killed with the harness's
	// thread: a killed harness had left its resetq processes polling a
	// dead queue for hours.
	running, err := localserver.Start(cmd)
	f.Close()
	if err != nil {
		p.err = err
		return p
	}
	var killed atomic.Bool
	if rp.stop > 0 {
		sig := syscall.SIGTERM
		if rp.kill {
			sig = syscall.SIGKILL
		}
		t := time.AfterFunc(rp.stop-rp.start, func() {
			killed.Store(rp.kill)
			cmd.Process.Signal(sig)
		})
		defer t.Stop()
	}
	var gauges func() []gauge
	if w.gauges {
		gauges = startGauges(ctx, log)
	}
	<-running.Exited()
	p.err = running.Err()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); killed.Load() && ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		p.err = nil // the crash the plan asked for
	}
	if gauges != nil {
		p.gauges = gauges()
	}
	p.end = time.Now()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		p.cpu = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
		p.maxRSSKiB = ru.Maxrss
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		p.err = fmt.Errorf("killed after %v: %v", timeout, p.err)
	}
	return p
}

// processEnv is a resetq process's environment: the SDK's standard
// variables with the stand-ins' endpoints, then w.env (the last of a name
// wins, as exec.Cmd takes it). STS is the Cognito stand-in's: the binary's
// GetCallerIdentity (the default credentials' account, DefaultAccount) and
// AssumeRole (--pool-roles) never reach AWS.
func (w *world) processEnv() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + w.dir,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_SQS=" + w.proxy.URL,
		"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + w.stub.URL,
		"AWS_ENDPOINT_URL_CLOUDWATCH=" + w.stub.URL,
		"AWS_ENDPOINT_URL_STS=" + w.stub.URL,
	}
	return append(env, w.env...)
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
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "`resetq work` has no " + strings.Join(missing, ", ") + " yet"
}
