// Package testenv is the end-to-end test bench shared by the e2e and deploy
// tests: moto_server with the quota/fault proxy in front of its Cognito, a
// queue and DLQ, pools of users, and the built resetq binary run as a user
// would run it. Only tests import it.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	"github.com/resetq/resetq/internal/localserver"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/job"
)

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary is the resetq binary, built once per test process with -race into
// a temporary folder that Cleanup removes.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if build.dir, build.err = os.MkdirTemp("", "resetq-bin-"); build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "resetq")
		cmd := exec.Command("go", "build", "-race", "-o", build.path, "./cmd/resetq")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("build resetq: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// Main runs the tests, then stops the shared moto_server and removes the
// built binary. Use it as TestMain.
func Main(m *testing.M) {
	MainThen(m, func(code int) int { return code })
}

// MainThen is Main with after run once the tests are done, before the
// shared moto_server stops; it gets the tests' exit code and returns the
// process's (e.g. to write a report).
func MainThen(m *testing.M, after func(code int) int) {
	code := after(m.Run())
	if err := mototest.CloseShared(); err != nil && code == 0 {
		code = 1
	}
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// Env is one test's world: moto, a proxy in front of its Cognito, a queue
// with its DLQ, and SDK configs per Region.
type Env struct {
	T        *testing.T
	Moto     *moto.Server
	Proxy    *awsproxy.Server
	East     aws.Config // us-east-1, straight to moto
	West     aws.Config // eu-west-1, straight to moto
	SQS      *sqs.Client
	QueueURL string
	DLQURL   string
	// ExtraEnv is added to resetq's environment by Start, after ChildEnv's
	// (a later variable wins: AWS_ENDPOINT_URL_STS=... to put a proxy in
	// front of moto's STS).
	ExtraEnv []string
	// SQSProxy, once ProxySQS has started it, carries resetq's SQS calls
	// (ChildEnv points AWS_ENDPOINT_URL_SQS at it); the test's own SQS
	// client still goes straight to moto.
	SQSProxy *awsproxy.Server
}

// ProxySQS starts a second awsproxy in front of moto for resetq's SQS
// traffic, so a test can inject faults into SQS as into Cognito. Call it
// before Start.
func (e *Env) ProxySQS(opts ...awsproxy.Option) *awsproxy.Server {
	e.T.Helper()
	proxy, err := awsproxy.Start(e.Moto.URL, opts...)
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(func() { proxy.Close() })
	e.SQSProxy = proxy
	return proxy
}

func New(t *testing.T, name string) *Env {
	t.Helper()
	srv := mototest.Shared(t)
	ctx := context.Background()
	proxy, err := awsproxy.Start(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	e := &Env{T: t, Moto: srv, Proxy: proxy}
	if e.East, err = moto.Config(ctx, srv.URL, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if e.West, err = moto.Config(ctx, srv.URL, "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	e.SQS = sqs.NewFromConfig(e.East)
	if e.QueueURL, e.DLQURL, err = moto.CreateQueues(ctx, e.East, name+strconv.FormatInt(time.Now().UnixNano(), 36), 10, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return e
}

// pool creates a pool with users in the given states.
func (e *Env) Pool(cfg aws.Config, users map[string]moto.UserState) string {
	e.T.Helper()
	ctx := context.Background()
	id, err := moto.CreatePool(ctx, cfg, "p"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		e.T.Fatal(err)
	}
	for u, st := range users {
		if err := moto.CreateUser(ctx, cfg, id, u, st); err != nil {
			e.T.Fatal(err)
		}
	}
	return id
}

// confirmedUsers creates a pool in cfg's Region with n confirmed users named
// prefix00, prefix01, ... and returns it with the users and one job each.
func (e *Env) ConfirmedUsers(cfg aws.Config, prefix string, n int) (pool string, users, bodies []string) {
	e.T.Helper()
	states := map[string]moto.UserState{}
	for i := range n {
		u := fmt.Sprintf("%s%02d", prefix, i)
		states[u] = moto.Confirmed
		users = append(users, u)
	}
	pool = e.Pool(cfg, states)
	for _, u := range users {
		bodies = append(bodies, Job(pool, u))
	}
	return pool, users, bodies
}

func (e *Env) Status(cfg aws.Config, pool, user string) string {
	e.T.Helper()
	s, err := moto.UserStatus(context.Background(), cfg, pool, user)
	if err != nil {
		e.T.Fatal(err)
	}
	return s
}

// ExpectStatus fails the test (without stopping it) for each user of pool
// whose status is not want, e.g. "RESET_REQUIRED".
func (e *Env) ExpectStatus(cfg aws.Config, pool, want string, users ...string) {
	e.T.Helper()
	mototest.ExpectStatus(e.T, cfg, pool, want, users...)
}

// send enqueues bodies, each with the campaign attribute, in batches of 10.
func (e *Env) Send(campaign string, bodies ...string) {
	e.T.Helper()
	for len(bodies) > 0 {
		n := min(10, len(bodies))
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i, b := range bodies[:n] {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{
					job.AttrCampaign: {DataType: aws.String("String"), StringValue: aws.String(campaign)}},
			})
		}
		out, err := e.SQS.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: &e.QueueURL, Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			e.T.Fatalf("send: %v %+v", err, out)
		}
		bodies = bodies[n:]
	}
}

// deadLetter is one DLQ message.
type DeadLetter struct {
	Body  string
	Attrs map[string]string
}

// PeekDLQ reads every DLQ message and leaves them there: each is hidden
// while the pass reads, then made visible again.
func (e *Env) PeekDLQ() []DeadLetter {
	e.T.Helper()
	var out []DeadLetter
	var receipts []*string
	for {
		r, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &e.DLQURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 120, MessageAttributeNames: []string{"All"}})
		if err != nil {
			e.T.Fatal(err)
		}
		if len(r.Messages) == 0 {
			break
		}
		for _, m := range r.Messages {
			d := DeadLetter{Body: aws.ToString(m.Body), Attrs: map[string]string{}}
			for k, v := range m.MessageAttributes {
				d.Attrs[k] = aws.ToString(v.StringValue)
			}
			out = append(out, d)
			receipts = append(receipts, m.ReceiptHandle)
		}
	}
	for _, rh := range receipts {
		if _, err := e.SQS.ChangeMessageVisibility(context.Background(), &sqs.ChangeMessageVisibilityInput{
			QueueUrl: &e.DLQURL, ReceiptHandle: rh, VisibilityTimeout: 0}); err != nil {
			e.T.Fatal(err)
		}
	}
	return out
}

// drainDLQ receives and deletes every DLQ message.
func (e *Env) DrainDLQ() []DeadLetter {
	e.T.Helper()
	var out []DeadLetter
	for {
		r, err := e.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: &e.DLQURL, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: []string{"All"}})
		if err != nil {
			e.T.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			d := DeadLetter{Body: aws.ToString(m.Body), Attrs: map[string]string{}}
			for k, v := range m.MessageAttributes {
				d.Attrs[k] = aws.ToString(v.StringValue)
			}
			out = append(out, d)
			if _, err := e.SQS.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &e.DLQURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
				e.T.Fatal(err)
			}
		}
	}
}

// depth is the source queue's visible, in-flight and delayed counts.
func (e *Env) Depth() (visible, inflight, delayed int) {
	e.T.Helper()
	out, err := e.SQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: &e.QueueURL,
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"}})
	if err != nil {
		e.T.Fatal(err)
	}
	n := func(k string) int { v, _ := strconv.Atoi(out.Attributes[k]); return v }
	return n("ApproximateNumberOfMessages"), n("ApproximateNumberOfMessagesNotVisible"), n("ApproximateNumberOfMessagesDelayed")
}

// proc is a running resetq.
type Proc struct {
	Cmd     *exec.Cmd
	log     *bytes.Buffer
	logMu   *sync.Mutex // guards log and addr
	addr    string      // where it serves /metrics, once read from the log
	started time.Time
	done    chan error
	exited  chan struct{}
	logged  chan struct{} // closed once all of its output is in log
}

// childEnv is the environment of resetq: only the SDK's standard variables.
func (e *Env) ChildEnv(extra ...string) []string {
	sqsURL := e.Moto.URL
	if e.SQSProxy != nil {
		sqsURL = e.SQSProxy.URL
	}
	return append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + e.T.TempDir(),
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_SQS=" + sqsURL,
		"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=" + e.Proxy.URL,
		"AWS_ENDPOINT_URL_CLOUDWATCH=" + e.Moto.URL,                    // the usage gauges: never the real AWS from a test
		"AWS_ENDPOINT_URL_DYNAMODB=" + serialDynamoDB(e.T, e.Moto.URL), // the campaign ledger
		"AWS_ENDPOINT_URL_STS=" + e.Moto.URL,                           // the accounts: GetCallerIdentity, AssumeRole
	}, extra...)
}

// serial holds the one-call-at-a-time proxies in front of moto's DynamoDB,
// one per moto URL for the test binary. moto serves each request on a
// thread of its own without a lock (docs/ledger.md, "Testing against
// moto"): two transactions adding to one counter item can lose an ADD (a
// worker's six resets counted five), and a transaction that fails restores
// the table as it was when it began. DynamoDB serializes an item's writes
// and isolates transactions; one call at a time gives the tests that, while
// resetq's callers still race.
var serial struct {
	mu      sync.Mutex
	proxies map[string]string // moto URL -> proxy URL
}

func serialDynamoDB(t *testing.T, target string) string {
	t.Helper()
	serial.mu.Lock()
	defer serial.mu.Unlock()
	if u, ok := serial.proxies[target]; ok {
		return u
	}
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// A connection moto (or a fault proxy behind this one) broke is broken
	// for resetq too, as a network error and not a 502: abort the answer.
	rp.ErrorHandler = func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) }
	var one sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		one.Lock()
		defer one.Unlock()
		rp.ServeHTTP(w, r)
	}))
	if serial.proxies == nil {
		serial.proxies = map[string]string{}
	}
	serial.proxies[target] = srv.URL // open until the test binary exits
	return srv.URL
}

func FreeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs `resetq work` with args after the queue flags. It serves
// /metrics on a port the kernel picks when resetq binds it (a port picked
// here and bound there could be taken in between by any other test's
// connection): MetricsAddr reads it from the log.
func (e *Env) Start(args ...string) *Proc {
	e.T.Helper()
	p := &Proc{log: &bytes.Buffer{}, logMu: &sync.Mutex{}, started: time.Now(), done: make(chan error, 1), exited: make(chan struct{}), logged: make(chan struct{})}
	p.Cmd = exec.Command(Binary(e.T), append([]string{"work", "--log-format", "text", "--metrics-addr", "127.0.0.1:0"}, args...)...)
	// Env twins of --queue-url and --allow-any-pool (tests name their own pools).
	p.Cmd.Env = append(e.ChildEnv("RESETQ_QUEUE_URL="+e.QueueURL, "RESETQ_ALLOW_ANY_POOL=true"), e.ExtraEnv...)
	pr, pw := io.Pipe()
	p.Cmd.Stdout, p.Cmd.Stderr = pw, pw
	if err := p.Cmd.Start(); err != nil {
		e.T.Fatal(err)
	}
	go func() {
		defer close(p.logged)
		s := bufio.NewScanner(pr)
		for s.Scan() {
			p.logMu.Lock()
			p.log.WriteString(s.Text() + "\n")
			p.logMu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr) // after a line too long to scan: never block the process's writes
	}()
	go func() { err := p.Cmd.Wait(); pw.Close(); close(p.exited); p.done <- err }()
	e.T.Cleanup(func() {
		if p.Cmd.ProcessState == nil {
			_ = p.Cmd.Process.Kill()
		}
		if e.T.Failed() {
			e.T.Logf("resetq log:\n%s", p.Logs())
		}
	})
	return p
}

// MetricsAddr is where the process serves /metrics, from its log; it waits
// for the line until a minute after the start (one deadline for all calls)
// and is empty if the process exits first or never says.
func (p *Proc) MetricsAddr() string {
	p.logMu.Lock()
	addr := p.addr
	p.logMu.Unlock()
	if addr != "" {
		return addr
	}
	for {
		addr, ok := localserver.MetricsAddr([]byte(p.Logs()))
		if ok {
			p.logMu.Lock()
			p.addr = addr
			p.logMu.Unlock()
			return addr
		}
		select {
		case <-p.exited:
			<-p.logged // the last lines are in the log
			addr, _ := localserver.MetricsAddr([]byte(p.Logs()))
			return addr
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(p.started) > time.Minute {
			return ""
		}
	}
}

func (p *Proc) Logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// wait waits for the process to exit and returns its exit code.
func (p *Proc) Wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("resetq did not exit within %v", within)
		return -1
	}
}

// metric reads one sample from /metrics, e.g. `resetq_jobs_total{outcome="reset"}`.
// It returns -1 when the endpoint does not answer yet.
func (p *Proc) Metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.MetricsAddr() + "/metrics")
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
func Eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Job is the message body of a job for user in pool.
func Job(pool, user string) string { return job.MustBody(pool, user) }

func (p *Proc) Signal(t *testing.T, sig syscall.Signal) {
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill(t *testing.T) {
	t.Helper()
	p.Signal(t, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		t.Fatal("resetq still runs a minute after SIGKILL")
	}
}

// Ready is the status code of /readyz, or 0 when it does not answer.
func (p *Proc) Ready() int {
	resp, err := http.Get("http://" + p.MetricsAddr() + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
