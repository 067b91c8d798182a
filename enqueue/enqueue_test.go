package enqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/queue"
)

// fakeSQS answers SendMessageBatch: fail decides, per entry body and the
// number of times that body was sent before, whether it fails and how.
type fakeSQS struct {
	mu        sync.Mutex
	calls     int
	sizes     []int
	tries     map[string]int
	queue     []string // bodies reported Successful
	campaigns map[string]bool
	sent      []job.Message // bodies and attributes reported Successful
	callErr   func(call int) error
	fail      func(body string, try int) *sqstypes.BatchResultErrorEntry
}

func (f *fakeSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.tries == nil {
		f.tries, f.campaigns = map[string]int{}, map[string]bool{}
	}
	if f.callErr != nil {
		if err := f.callErr(f.calls); err != nil {
			return nil, err
		}
	}
	f.sizes = append(f.sizes, len(in.Entries))
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		body := aws.ToString(e.MessageBody)
		try := f.tries[body]
		f.tries[body]++
		if f.fail != nil {
			if fe := f.fail(body, try); fe != nil {
				fe.Id = e.Id
				out.Failed = append(out.Failed, *fe)
				continue
			}
		}
		f.queue = append(f.queue, body)
		f.campaigns[aws.ToString(e.MessageAttributes[job.AttrCampaign].StringValue)] = true
		m := job.Message{Body: body, Attributes: map[string]job.Attribute{}}
		for k, v := range e.MessageAttributes {
			m.Attributes[k] = job.Attribute{DataType: aws.ToString(v.DataType), StringValue: aws.ToString(v.StringValue)}
		}
		f.sent = append(f.sent, m)
		out.Successful = append(out.Successful, sqstypes.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String(fmt.Sprint("m", len(f.queue)))})
	}
	return out, nil
}

func users(names ...string) Source {
	return func(_ context.Context, fn func(Input) error) error {
		for i, n := range names {
			if err := fn(Input{Line: i + 1, Username: n}); err != nil {
				return err
			}
		}
		return nil
	}
}

func newRunner(api queue.BatchAPI, mod func(*Config)) *Runner {
	cfg := Config{Queue: queue.NewBatchSender(api, "http://q"), QueueURL: "http://q", Campaign: "c-test", Builder: Builder{Pool: pool},
		Concurrency: 3, Backoff: time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return r
}

func TestRunBatchesDedupeInvalid(t *testing.T) {
	var names []string
	for i := range 25 {
		names = append(names, fmt.Sprintf("user%02d", i))
	}
	names = append(names, "user03", "bad name", "user07", "", "user03")
	f := &fakeSQS{}
	var reported []Invalid
	s, err := newRunner(f, func(c *Config) { c.OnInvalid = func(i Invalid) { reported = append(reported, i) } }).Run(t.Context(), users(names...))
	if err != nil {
		t.Fatal(err)
	}
	if s.Read != 30 || s.Enqueued != 25 || s.Duplicates != 3 || s.Invalid != 2 || s.Rejected != 0 || s.Calls != 3 {
		t.Errorf("summary %+v", s)
	}
	if len(f.queue) != 25 || !f.campaigns["c-test"] || len(f.campaigns) != 1 {
		t.Errorf("queue %d %v", len(f.queue), f.campaigns)
	}
	total := 0
	for _, n := range f.sizes {
		if n > BatchSize {
			t.Errorf("a batch of %d", n)
		}
		total += n
	}
	if total != 25 || len(f.sizes) != 3 {
		t.Errorf("batch sizes %v", f.sizes)
	}
	if len(reported) != 2 || reported[0].Line != 27 || reported[1].Line != 29 || len(s.InvalidLines) != 2 || s.InvalidLines[0].Line != 27 {
		t.Errorf("invalid %+v %+v", reported, s.InvalidLines)
	}
}

func TestRunRetriesFailedEntries(t *testing.T) {
	f := &fakeSQS{fail: func(body string, try int) *sqstypes.BatchResultErrorEntry {
		switch {
		case strings.Contains(body, "flaky") && try < 3:
			return &sqstypes.BatchResultErrorEntry{Code: aws.String("InternalError"), Message: aws.String("oops")}
		case strings.Contains(body, "poison"):
			return &sqstypes.BatchResultErrorEntry{Code: aws.String("InternalError"), Message: aws.String("always")}
		case strings.Contains(body, "sender"):
			return &sqstypes.BatchResultErrorEntry{Code: aws.String("InvalidParameterValue"), Message: aws.String("bad"), SenderFault: true}
		}
		return nil
	}}
	var rejects bytes.Buffer
	s, err := newRunner(f, func(c *Config) { c.Retries = 4; c.Rejects = &rejects }).
		Run(t.Context(), users("a", "flaky1", "b", "poison", "flaky2", "sender", "c"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Enqueued != 5 || s.Rejected != 2 || len(f.queue) != 5 {
		t.Errorf("summary %+v, queue %v", s, f.queue)
	}
	if f.tries[`{"UserPoolId":"`+pool+`","Username":"poison"}`] != 5 || f.tries[`{"UserPoolId":"`+pool+`","Username":"sender"}`] != 1 {
		t.Errorf("tries %v: want 5 of poison, 1 of sender", f.tries)
	}
	lines := strings.Split(strings.TrimSpace(rejects.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("rejects %q", rejects.String())
	}
	byLine := map[int]Reject{}
	for _, l := range lines {
		var r Reject
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if _, err := job.ParseJob(r.Job); err != nil {
			t.Errorf("reject %s: the job is not valid: %v", l, err)
		}
		byLine[r.Line] = r
	}
	if !strings.Contains(byLine[4].Error, "InternalError: always (5 tries)") || !strings.Contains(byLine[6].Error, "InvalidParameterValue: bad") {
		t.Errorf("rejects %+v", byLine)
	}
}

func TestRunRetriesFailedCalls(t *testing.T) {
	f := &fakeSQS{callErr: func(call int) error {
		if call <= 2 {
			return errors.New("connection reset")
		}
		return nil
	}}
	s, err := newRunner(f, func(c *Config) { c.Concurrency = 1 }).Run(t.Context(), users("a", "b"))
	if err != nil || s.Enqueued != 2 || s.Calls != 3 || s.Rejected != 0 {
		t.Errorf("summary %+v, %v", s, err)
	}

	f = &fakeSQS{callErr: func(int) error { return errors.New("down") }}
	s, err = newRunner(f, func(c *Config) { c.Retries = 2 }).Run(t.Context(), users("a", "b"))
	if err != nil || s.Enqueued != 0 || s.Rejected != 2 || s.Calls != 3 || !strings.Contains(s.Rejects[0].Error, "(3 tries): down") {
		t.Errorf("summary %+v, %v", s, err)
	}
}

func TestRunFatal(t *testing.T) {
	fatal := errors.New("no such queue")
	f := &fakeSQS{callErr: func(int) error { return fatal }}
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprint("u", i))
	}
	s, err := newRunner(f, func(c *Config) { c.Fatal = func(err error) bool { return errors.Is(err, fatal) } }).Run(t.Context(), users(names...))
	if !errors.Is(err, fatal) {
		t.Errorf("got %v, want the fatal error", err)
	}
	if s.Enqueued != 0 || s.Rejected == 0 || f.calls > 3 {
		t.Errorf("summary %+v after %d calls", s, f.calls)
	}
}

func TestRunDryRun(t *testing.T) {
	f := &fakeSQS{}
	var out bytes.Buffer
	s, err := newRunner(f, func(c *Config) { c.DryRun = true; c.DryRunOut = &out }).Run(t.Context(), users("a", "b", "a", "x y"))
	if err != nil || f.calls != 0 || s.Enqueued != 0 || s.WouldEnqueue != 2 || s.Duplicates != 1 || s.Invalid != 1 {
		t.Errorf("summary %+v, %v, %d calls", s, err, f.calls)
	}
	if want := `{"UserPoolId":"` + pool + `","Username":"a"}` + "\n" + `{"UserPoolId":"` + pool + `","Username":"b"}` + "\n"; out.String() != want {
		t.Errorf("printed %q", out.String())
	}
}

func TestRunSourceError(t *testing.T) {
	f := &fakeSQS{}
	boom := errors.New("listing failed")
	src := func(ctx context.Context, fn func(Input) error) error {
		for i := range 15 {
			if err := fn(Input{Line: i + 1, Username: fmt.Sprint("u", i)}); err != nil {
				return err
			}
		}
		return boom
	}
	s, err := newRunner(f, nil).Run(t.Context(), src)
	if !errors.Is(err, boom) || s.Enqueued != 15 {
		t.Errorf("summary %+v, %v: what was read before the error must still be sent", s, err)
	}
}

// TestRunFoldsCase: in a pool whose usernames are not case-sensitive,
// "Alice" and "alice" are one user, sent once as first named; in a pool
// whose usernames are, they are two. Each pool is asked about once.
func TestRunFoldsCase(t *testing.T) {
	const insensitive = "us-east-1_NoCase1"
	asked := map[string]int{}
	src := func(_ context.Context, fn func(Input) error) error {
		for i, j := range []string{
			`{"UserPoolId":"` + insensitive + `","Username":"Alice"}`,
			`{"UserPoolId":"` + insensitive + `","Username":"alice"}`,
			`{"UserPoolId":"` + pool + `","Username":"Alice"}`,
			`{"UserPoolId":"` + pool + `","Username":"alice"}`,
			`{"UserPoolId":"` + insensitive + `","Username":"ALICE"}`,
			`{"UserPoolId":"` + pool + `","Username":"alice"}`,
		} {
			if err := fn(Input{Line: i + 1, Job: []byte(j)}); err != nil {
				return err
			}
		}
		return nil
	}
	f := &fakeSQS{}
	s, err := newRunner(f, func(c *Config) {
		c.Builder.Pool = ""
		c.CaseSensitive = func(_ context.Context, p string) bool { asked[p]++; return p != insensitive }
	}).Run(t.Context(), src)
	if err != nil || s.Enqueued != 3 || s.Duplicates != 3 {
		t.Errorf("summary %+v, %v", s, err)
	}
	slices.Sort(f.queue)
	want := []string{
		`{"UserPoolId":"` + pool + `","Username":"Alice"}`,
		`{"UserPoolId":"` + pool + `","Username":"alice"}`,
		`{"UserPoolId":"` + insensitive + `","Username":"Alice"}`,
	}
	slices.Sort(want)
	if !slices.Equal(f.queue, want) {
		t.Errorf("queue %q, want %q", f.queue, want)
	}
	if asked[insensitive] != 1 || asked[pool] != 1 || len(asked) != 2 {
		t.Errorf("asked %v, want each pool once", asked)
	}
}

// TestRunGlobalSignOut: with GlobalSignOut every job asks for the sign-out,
// and the signature covers the request, so the worker accepts the job as
// sent and refuses it with the request stripped.
func TestRunGlobalSignOut(t *testing.T) {
	key := []byte(strings.Repeat("k", 64))
	for _, signOut := range []bool{true, false} {
		f := &fakeSQS{}
		if _, err := newRunner(f, func(c *Config) { c.GlobalSignOut, c.SigningKey = signOut, key }).Run(t.Context(), users("alice", "bob")); err != nil {
			t.Fatal(err)
		}
		for _, m := range f.sent {
			_, asked := m.Attributes[job.AttrGlobalSignOut]
			if asked != signOut || (signOut && m.Attributes[job.AttrGlobalSignOut].StringValue != "true") {
				t.Fatalf("GlobalSignOut=%v: attributes %v", signOut, m.Attributes)
			}
			if err := job.VerifySignature([][]byte{key}, m); err != nil {
				t.Fatalf("GlobalSignOut=%v: the worker refuses the job as sent: %v", signOut, err)
			}
			if signOut {
				delete(m.Attributes, job.AttrGlobalSignOut)
				if job.VerifySignature([][]byte{key}, m) == nil {
					t.Fatal("the signature still holds with the sign-out request stripped")
				}
			}
		}
	}
}

// TestRunOnSent: OnSent hears exactly the jobs SQS accepted, with the
// pool's case folding; its error fails the run after the sends.
func TestRunOnSent(t *testing.T) {
	api := &fakeSQS{fail: func(body string, _ int) *sqstypes.BatchResultErrorEntry {
		if strings.Contains(body, `"bad"`) {
			return &sqstypes.BatchResultErrorEntry{Code: aws.String("InvalidParameterValue"), Message: aws.String("no"), SenderFault: true}
		}
		return nil
	}}
	var mu sync.Mutex
	var got []string
	r := newRunner(api, func(c *Config) {
		c.CaseSensitive = func(context.Context, string) bool { return false }
		c.OnSent = func(_ context.Context, sent []Sent) error {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range sent {
				got = append(got, fmt.Sprintf("%s/%v", s.Job.Username, s.Fold))
			}
			return nil
		}
	})
	if _, err := r.Run(context.Background(), users("a", "bad", "b")); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a/true", "b/true"}) {
		t.Fatalf("OnSent heard %v, want a and b, folded", got)
	}
	r = newRunner(&fakeSQS{}, func(c *Config) {
		c.OnSent = func(context.Context, []Sent) error { return errors.New("ledger down") }
	})
	s, err := r.Run(context.Background(), users("a"))
	if err == nil || !strings.Contains(err.Error(), "ledger down") || s.Enqueued != 1 {
		t.Fatalf("Run = %+v, %v; want the job sent and the ledger's error", s, err)
	}
}
