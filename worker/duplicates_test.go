package worker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/resetq/resetq/job"
)

// expire makes the held messages with this ID visible again, as SQS does
// when a message's visibility timeout ends without a delete.
func (q *fakeQueue) expire(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for r, m := range q.held {
		if m.ID == id {
			delete(q.held, r)
			q.visible = append(q.visible, m)
			q.log("expire:%s", id)
		}
	}
}

// TestFailedDeleteDoesNotForkJob: a job fails transiently and is sent back
// as a copy, and every try to delete the original fails. When the original
// comes back, the worker deletes it instead of running the job again: the
// job ends once (one dead letter for a user that does not exist), not
// twice.
func TestFailedDeleteDoesNotForkJob(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := newBundle(func(context.Context, job.Job) error {
		if calls.Add(1) == 1 {
			return codeErr("InternalErrorException", "try again")
		}
		return codeErr("UserNotFoundException", "User does not exist.")
	})
	first := "" // the original's first receipt: every delete of it fails
	b.q.deleteFail = func(receipt string, try int) error {
		if first == "" && strings.HasPrefix(receipt, "m1#") {
			first = receipt // (called under the queue's lock)
		}
		if receipt == first {
			return errors.New("InternalError")
		}
		return nil
	}
	b.q.push(jobBody(pool, "ghost"), nil)

	done := make(chan struct{})
	go func() { defer close(done); b.run(t) }()
	// The copy has been dead-lettered and the original's three deletes
	// have failed: now its visibility timeout ends.
	b.q.waitFor(t, "the copy dead-lettered and the original's delete given up", func() bool {
		b.q.mu.Lock()
		defer b.q.mu.Unlock()
		return first != "" && b.q.deleteTry[first] == 3 && slices.Contains(b.q.events, "dlq:UserNotFoundException")
	})
	b.q.expire("m1")
	<-done

	if n := len(b.dlq.all()); n != 1 {
		t.Fatalf("%d dead letters for one job, want 1", n)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d calls to Cognito, want 2 (the original, then its copy)", calls.Load())
	}
	_, held, events, _ := b.q.snapshot()
	if held != 0 || !slices.Contains(events, "delete:m1") {
		t.Fatalf("the original was not deleted when it came back: held %d, events %v", held, events)
	}
}

// TestSentBackJobCheckedBeforeReset: a call whose answer is lost (a
// timeout, a dropped connection) may have reset the user all the same. The
// copy sent back for it is checked first, like a redelivery, so the user
// does not get a second code.
func TestSentBackJobCheckedBeforeReset(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	status := map[string]string{"alice": "CONFIRMED", "bob": "CONFIRMED"}
	resets := map[string]int{}
	b := newBundle(func(_ context.Context, j job.Job) error {
		mu.Lock()
		defer mu.Unlock()
		resets[j.Username]++
		status[j.Username] = "RESET_REQUIRED"
		if j.Username == "alice" && resets[j.Username] == 1 {
			return errors.New("connection reset by peer") // the reset happened; its answer was lost
		}
		return nil
	})
	b.cfg.Statuses = statusFunc(func(_ context.Context, j job.Job) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return status[j.Username], nil
	})
	b.cfg.StatusPacer = newFakePacer()
	b.q.push(jobBody(pool, "alice"), nil)
	b.q.push(jobBody(pool, "bob"), nil) // first delivery, no failure: not checked
	b.run(t)

	if resets["alice"] != 1 || resets["bob"] != 1 {
		t.Fatalf("resets %v, want one each", resets)
	}
	if got := testutil.ToFloat64(b.m.RedeliveryChecks.WithLabelValues("already_reset")); got != 1 {
		t.Fatalf("already_reset checks = %v, want 1 (alice's copy)", got)
	}
	if b.jobs("reset") != 2 || b.jobs("retried") != 1 {
		t.Fatalf("reset=%v retried=%v, want 2 and 1", b.jobs("reset"), b.jobs("retried"))
	}
}

// hangingSender never answers; it returns only when the call's context ends.
type hangingSender struct{}

func (hangingSender) Send(ctx context.Context, _ job.Outgoing) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestHungSendGivesUp: a DLQ send that SQS never answers gives up after
// CallTimeout and the message is kept hidden to come back later, so the
// handler is free for the next job instead of holding it until shutdown.
func TestHungSendGivesUp(t *testing.T) {
	t.Parallel()
	var resets atomic.Int64
	b := newBundle(func(_ context.Context, j job.Job) error {
		if j.Username == "ghost" {
			return codeErr("UserNotFoundException", "User does not exist.")
		}
		resets.Add(1)
		return nil
	})
	b.cfg.DeadLetters = hangingSender{}
	b.cfg.Concurrency = 1
	b.cfg.CallTimeout = 50 * time.Millisecond
	b.cfg.ExitWhenIdle = 0
	b.q.push(jobBody(pool, "ghost"), nil)
	b.q.push(jobBody(pool, "alice"), nil)
	_, cancel, done := b.start(t)
	b.q.waitFor(t, "the ghost's job kept hidden and alice's job done", func() bool {
		b.q.mu.Lock()
		defer b.q.mu.Unlock()
		return slices.ContainsFunc(b.q.events, func(e string) bool { return strings.HasPrefix(e, "hide:m1:") }) && slices.ContainsFunc(b.q.events, func(e string) bool { return e == "delete:m2" })
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if resets.Load() != 1 {
		t.Fatalf("%d resets, want alice's", resets.Load())
	}
}
