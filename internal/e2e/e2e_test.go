// Package e2e runs the built resetq binary as a user would, against
// moto_server (SQS and Cognito) with the project's quota/fault proxy in
// front of Cognito.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
)

// binary is the resetq binary under test, built once with -race.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "resetq-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "resetq")
	build := exec.Command("go", "build", "-race", "-o", binary, "../../cmd/resetq")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build resetq:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	moto.Main(m)
}

// env is one test's world: moto, a proxy in front of its Cognito, a queue
// with its DLQ, and SDK configs per Region.
type env struct {
	t        *testing.T
	moto     *moto.Server
	proxy    *awsproxy.Server
	east     aws.Config // us-east-1, straight to moto
	west     aws.Config // eu-west-1, straight to moto
	sqs      *sqs.Client
	queueURL string
	dlqURL   string
}

func newEnv(t *testing.T, name string) *env {
	t.Helper()
	srv := moto.Shared(t)
	ctx := context.Background()
	proxy, err := awsproxy.Start(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	e := &env{t: t, moto: srv, proxy: proxy}
	if e.east, err = moto.Config(ctx, srv.URL, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if e.west, err = moto.Config(ctx, srv.URL, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	e.sqs = sqs.NewFromConfig(e.east)
	if e.queueURL, e.dlqURL, err = moto.CreateQueues(ctx, e.east, name+strconv.FormatInt(time.Now().UnixNano(), 36), 10, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return e
}

// pool creates a pool with users in the given states.
func (e *env) pool(cfg aws.Config, users map[string]moto.UserState) string {
	e.t.Helper()
	ctx := context.Background()
	id, err := moto.CreatePool(ctx, cfg, "p"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		e.t.Fatal(err)
	}
	for u, st := range users {
		if err := moto.CreateUser(ctx, cfg, id, u, st); err != nil {
			e.t.Fatal(err)
		}
	}
	return id
}

// confirmedUsers creates a pool in cfg's Region with n confirmed users named
// prefix00, prefix01, ... and returns it with the users and one job each.
func (e *env) confirmedUsers(cfg aws.Config, prefix string, n int) (pool string, users, bodies []string) {
	e.t.Helper()
	states := map[string]moto.UserState{}
	for i := range n {
		u := fmt.Sprintf("%s%02d", prefix, i)
		states[u] = moto.Confirmed
		users = append(users, u)
	}
	pool = e.pool(cfg, states)
	for _, u := range users {
		bodies = append(bodies, job(pool, u))
	}
	return pool, users, bodies
}

func (e *env) status(cfg aws.Config, pool, user string) string {
	e.t.Helper()
	s, err := moto.UserStatus(context.Background(), cfg, pool, user)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// send enqueues bodies, each with the campaign attribute, in batches of 10.
func (e *env) send(campaign string, bodies ...string) {
	e.t.Helper()
	for len(bodies) > 0 {
		n := min(10, len(bodies))
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i, b := range bodies[:n] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{
					"resetq.campaign": {DataType: aws.String("String"), StringValue: aws.String(campaign)}},
			})
		}
		out, err := e.sqs.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &e.queueURL, Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			e.t.Fatalf("send: %v %+v", err, out)
		}
		bodies = bodies[n:]
	}
}

// deadLetter is one DLQ message.
type deadLetter struct {
	body  string
	attrs map[string]string
}

// drainDLQ receives and deletes every DLQ message.
func (e *env) drainDLQ() []deadLetter {
	e.t.Helper()
	var out []deadLetter
	for {
		r, err := e.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &e.dlqURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: []string{"All"}})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			d := deadLetter{body: aws.ToString(m.Body), attrs: map[string]string{}}
			for k, v := range m.MessageAttributes {
				d.attrs[k] = aws.ToString(v.StringValue)
			}
			out = append(out, d)
			if _, err := e.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &e.dlqURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// depth is the source queue's visible, in-flight and delayed counts.
func (e *env) depth() (visible, inflight, delayed int) {
	e.t.Helper()
	out, err := e.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &e.queueURL,
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"}})
	if err != nil {
		e.t.Fatal(err)
	}
	n := func(k string) int { v, _ := strconv.Atoi(out.Attributes[k]); return v }
	return n("ApproximateNumberOfMessages"), n("ApproximateNumberOfMessagesNotVisible"), n("ApproximateNumberOfMessagesDelayed")
}

// proc is a running resetq.
type proc struct {
	cmd         *exec.Cmd
	metricsAddr string
	log         *bytes.Buffer
	logMu       *sync.Mutex
	done        chan error
}

// childEnv is the environment of resetq: only the SDK's standard variables.
func (e *env) childEnv(extra ...string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + e.t.TempDir(),
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_SQS=" + e.moto.URL,
		"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + e.proxy.URL,
	}, extra...)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs `resetq work` with args after the queue flags.
func (e *env) start(args ...string) *proc {
	e.t.Helper()
	addr := freeAddr(e.t)
	p := &proc{metricsAddr: addr, log: &bytes.Buffer{}, logMu: &sync.Mutex{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, append([]string{"work", "--log-format", "text", "--metrics-addr", addr}, args...)...)
	p.cmd.Env = e.childEnv("RESETQ_QUEUE_URL=" + e.queueURL) // the env twin of --queue-url
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			p.logMu.Lock()
			p.log.WriteString(s.Text() + "\n")
			p.logMu.Unlock()
		}
	}()
	go func() { err := p.cmd.Wait(); pw.Close(); p.done <- err }()
	e.t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
		}
		if e.t.Failed() {
			e.t.Logf("resetq log:\n%s", p.logs())
		}
	})
	return p
}

func (p *proc) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("resetq did not exit within %v", within)
		return -1
	}
}

// metric reads one sample from /metrics, e.g. `resetq_jobs_total{outcome="reset"}`.
// It returns -1 when the endpoint does not answer yet.
func (p *proc) metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

// eventually polls cond until it holds or the deadline passes. It waits on
// the system under test, it does not pace it.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func job(pool, user string) string {
	return fmt.Sprintf(`{"UserPoolId":%q,"Username":%q}`, pool, user)
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}
