package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/clock/clocktest"
	"github.com/resetq/resetq/queue"
)

const startupTestQueue = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"

// fromSQS is err as the SDK returns it from GetQueueAttributes and the
// queue adapter hands it on.
func fromSQS(err error) error {
	op := &smithy.OperationError{ServiceID: "SQS", OperationName: "GetQueueAttributes", Err: err}
	return fmt.Errorf("get attributes of %s: %w", startupTestQueue, awserr.From(op))
}

// sqsAnswer is SQS's error answer code with the HTTP status, as the
// SDK's deserializer returns it.
func sqsAnswer(status int, code string) error {
	resp := &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}}
	return &awshttp.ResponseError{RequestID: "req-1", ResponseError: &smithyhttp.ResponseError{
		Response: resp, Err: &smithy.GenericAPIError{Code: code, Message: "answer " + code},
	}}
}

// afterAttempts is err once the SDK's retryer gave up on it.
func afterAttempts(err error) error { return &sdkretry.MaxAttemptsError{Attempt: 3, Err: err} }

// connReset is a connection reset while the SDK read the answer.
func connReset() error {
	return &smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: "https://sqs.us-east-1.amazonaws.com/",
		Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}}
}

// dialRefused is a connection refused, as net/http returns it.
func dialRefused() error {
	return &url.Error{Op: "Get", URL: "http://169.254.169.254/latest/api/token",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
}

func TestMayPassAtStartup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"500 InternalFailure", fromSQS(afterAttempts(sqsAnswer(500, "InternalFailure"))), true},
		{"503 ServiceUnavailable", fromSQS(afterAttempts(sqsAnswer(503, "ServiceUnavailable"))), true},
		{"connection reset", fromSQS(afterAttempts(connReset())), true},
		{"connection refused", fromSQS(afterAttempts(&smithyhttp.RequestSendError{Err: dialRefused()})), true},
		{"throttled: RequestThrottled", fromSQS(afterAttempts(sqsAnswer(400, "RequestThrottled"))), true},
		{"throttled: ThrottlingException", fromSQS(afterAttempts(sqsAnswer(400, "ThrottlingException"))), true},
		{"throttled: an unmodeled 429", fromSQS(afterAttempts(sqsAnswer(429, "SomethingNew"))), true},

		{"no such queue", fromSQS(sqsAnswer(400, "AWS.SimpleQueueService.NonExistentQueue")), false},
		{"no such queue: QueueDoesNotExist", fromSQS(sqsAnswer(400, "QueueDoesNotExist")), false},
		{"no such queue, on a 500 (a usage error is never retried)", fromSQS(sqsAnswer(500, "AWS.SimpleQueueService.NonExistentQueue")), false},
		{"access denied", fromSQS(sqsAnswer(403, "AccessDenied")), false},
		{"a bad token", fromSQS(sqsAnswer(403, "InvalidClientTokenId")), false},
		{"another 4xx: InvalidParameterValue", fromSQS(sqsAnswer(400, "InvalidParameterValue")), false},
		// The instance role's endpoint refused: the SDK would retry the
		// connection, but no credentials is no fault that passes.
		{"credentials that do not load", fromSQS(fmt.Errorf("get identity: get credentials: %w", dialRefused())), false},
		{"cancelled", fromSQS(&smithy.CanceledError{Err: context.Canceled}), false},
		{"cancelled, bare", context.Canceled, false},
		// net/http's error for an expired context is a timeout, which the
		// SDK's classification alone would retry.
		{"context deadline, through net/http", fromSQS(&url.Error{Op: "Post", URL: "https://sqs/", Err: context.DeadlineExceeded}), false},
		{"a RedrivePolicy that is not JSON", errors.New("RedrivePolicy of q is not valid JSON: unexpected end of JSON input"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mayPassAtStartup(tt.err); got != tt.want {
				t.Errorf("mayPassAtStartup(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestMayPassAtStartupRealSDK: the SDK's own errors, over HTTP through the
// queue adapter, classify as the table above says.
func TestMayPassAtStartupRealSDK(t *testing.T) {
	t.Parallel()
	answer := func(status int, code, queryCode string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "application/x-amz-json-1.0")
			h.Set("X-Amzn-ErrorType", code)
			if queryCode != "" {
				h.Set("X-Amzn-Query-Error", queryCode+";Sender")
			}
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"__type":%q,"message":"answer"}`, code)
		}
	}
	reset := func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		conn.(*net.TCPConn).SetLinger(0) // a RST, not a FIN
		conn.Close()
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		creds   error // the credentials provider's error
		want    bool
		usage   bool // startupError makes it a usage error
	}{
		{"500 InternalFailure", answer(500, "InternalFailure", ""), nil, true, false},
		{"connection reset", reset, nil, true, false},
		{"throttled", answer(400, "ThrottlingException", "RequestThrottled"), nil, true, false},
		{"no such queue", answer(400, "com.amazonaws.sqs#QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"), nil, false, true},
		{"access denied", answer(403, "AccessDenied", ""), nil, false, true},
		{"InvalidParameterValue", answer(400, "InvalidParameterValue", ""), nil, false, false},
		{"credentials that do not load", answer(500, "InternalFailure", ""), dialRefused(), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			cfg := aws.Config{
				Region:           "us-east-1",
				BaseEndpoint:     aws.String(srv.URL),
				RetryMaxAttempts: 1, // the classification is the same after 3; the SDK's waits are not the test's
				Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
					return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, tt.creds
				}),
			}
			_, err := queue.New(queue.NewClient(cfg, "us-east-1"), srv.URL+"/123456789012/jobs", nil).Settings(t.Context())
			if err == nil {
				t.Fatal("Settings succeeded")
			}
			if got := mayPassAtStartup(err); got != tt.want {
				t.Errorf("mayPassAtStartup(%v) = %v, want %v (code %q)", err, got, tt.want, awserr.Code(err))
			}
			if usage := errors.As(startupError("read", err), new(usageError)); usage != tt.usage {
				t.Errorf("startupError(%v) is a usage error: %v, want %v", err, usage, tt.usage)
			}
		})
	}
}

// startupRun is a startupRead under test, on a Fake clock with a fixed
// jitter draw.
type startupRun struct {
	clk   *clocktest.Fake
	reads atomic.Int32
	warns atomic.Int32
	done  chan error
}

const startupTestDraw = 0.5

// startStartupRead runs startupRead in its own goroutine; read's n-th call
// (1-based) returns fail(n).
func startStartupRead(ctx context.Context, fail func(n int) error) *startupRun {
	r := &startupRun{clk: clocktest.New(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)), done: make(chan error, 1)}
	s := startup{clk: r.clk, draw: func() float64 { return startupTestDraw }, warn: func(string, ...any) { r.warns.Add(1) }}
	go func() {
		v, err := startupRead(ctx, s, "read the source queue", func(context.Context) (string, error) {
			if err := fail(int(r.reads.Add(1))); err != nil {
				return "", err
			}
			return "settings", nil
		})
		if err == nil && v != "settings" {
			err = fmt.Errorf("startupRead returned %q without an error", v)
		}
		r.done <- err
	}()
	return r
}

// next waits, without sleeping, until the read under test waits on the
// clock (true) or returns (false, its error).
func (r *startupRun) next() (waits bool, err error) {
	for {
		select {
		case err := <-r.done:
			return false, err
		default:
		}
		if r.clk.Waiters() > 0 {
			return true, nil
		}
		runtime.Gosched()
	}
}

// wait checks that the read under test waits startupCurve's delay for
// retry n, then lets it pass.
func (r *startupRun) wait(t *testing.T, n int) {
	t.Helper()
	waits, err := r.next()
	if !waits {
		t.Fatalf("returned before retry %d (after %d reads): %v", n, r.reads.Load(), err)
	}
	d := startupCurve.Delay(n, startupTestDraw)
	r.clk.Advance(d - time.Nanosecond)
	if r.clk.Waiters() != 1 {
		t.Fatalf("retry %d waited less than %v", n, d)
	}
	r.clk.Advance(time.Nanosecond)
}

var fault500 = fromSQS(afterAttempts(sqsAnswer(500, "InternalFailure")))

func TestStartupReadWaitsOutFaults(t *testing.T) {
	t.Parallel()
	r := startStartupRead(t.Context(), func(n int) error {
		if n <= 2 {
			return fault500
		}
		return nil
	})
	r.wait(t, 1)
	r.wait(t, 2)
	if waits, err := r.next(); waits || err != nil {
		t.Fatalf("after two faults and a success: waits %v, error %v; want the settings", waits, err)
	}
	if n, w := r.reads.Load(), r.warns.Load(); n != 3 || w != 2 {
		t.Errorf("%d reads, %d warnings; want 3 and 2", n, w)
	}
}

func TestStartupReadGivesUpAfterTheBound(t *testing.T) {
	t.Parallel()
	r := startStartupRead(t.Context(), func(int) error { return fault500 })
	for n := 1; n < startupTries; n++ {
		r.wait(t, n)
	}
	waits, err := r.next()
	if waits || err == nil {
		t.Fatalf("after %d faults: waits %v, error %v; want it to give up", startupTries, waits, err)
	}
	if n := r.reads.Load(); n != startupTries || startupTries != 4 {
		t.Errorf("%d reads, want %d (startupTries %d)", n, 4, startupTries)
	}
	if want := "read the source queue (4 tries): "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start %q", err, want)
	}
	if errors.As(err, new(usageError)) || !errors.Is(err, fault500) {
		t.Errorf("error %v: want a runtime error (exit 1) around the last fault", err)
	}
}

func TestStartupReadUsageErrorAtOnce(t *testing.T) {
	t.Parallel()
	missing := fromSQS(sqsAnswer(400, "AWS.SimpleQueueService.NonExistentQueue"))
	r := startStartupRead(t.Context(), func(int) error { return missing })
	waits, err := r.next()
	if waits {
		t.Fatal("waits to read a queue that does not exist again")
	}
	if n := r.reads.Load(); n != 1 {
		t.Errorf("%d reads, want 1", n)
	}
	if !errors.As(err, new(usageError)) || !strings.HasPrefix(err.Error(), "read the source queue: ") {
		t.Errorf("error %v: want a usage error (exit 2) naming the read", err)
	}
}

func TestStartupReadInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	r := startStartupRead(ctx, func(int) error { return fault500 })
	if waits, err := r.next(); !waits {
		t.Fatalf("returned at the first fault: %v", err)
	}
	cancel()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(10 * time.Second): // a guard; the clock never moves
		t.Fatal("still waiting 10 s after the context ended")
	}
	if want := "read the source queue (1 try, interrupted): "; err == nil || !strings.HasPrefix(err.Error(), want) ||
		errors.As(err, new(usageError)) || !errors.Is(err, fault500) {
		t.Fatalf("interrupted while waiting: error %v; want a runtime error around the fault starting %q", err, want)
	}
	if n := r.reads.Load(); n != 1 {
		t.Errorf("%d reads, want 1", n)
	}
}

func TestStartupReadUsageErrorAfterAFault(t *testing.T) {
	t.Parallel()
	missing := fromSQS(sqsAnswer(400, "AWS.SimpleQueueService.NonExistentQueue"))
	r := startStartupRead(t.Context(), func(n int) error {
		if n == 1 {
			return fault500
		}
		return missing
	})
	r.wait(t, 1)
	waits, err := r.next()
	if waits {
		t.Fatal("waits to read a queue that does not exist again")
	}
	if n := r.reads.Load(); n != 2 {
		t.Errorf("%d reads, want 2", n)
	}
	if !errors.As(err, new(usageError)) || !strings.HasPrefix(err.Error(), "read the source queue (2 tries): ") {
		t.Errorf("error %v: want a usage error (exit 2) naming the read and its 2 tries", err)
	}
}
