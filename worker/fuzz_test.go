package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/job/jobtest"
)

// FuzzHandleMessage runs the whole worker (receive, verify, decode, call,
// decide, delete / requeue / dead-letter) on one fuzzed message followed by
// a valid one, and checks the ledger: the worker returns by itself, the
// fuzzed message ends in exactly one place with its body unchanged (the
// user reset, or one DLQ message whose reason says why), and the valid job
// after it is still reset. The seed corpus, poison bodies included, is in
// testdata/fuzz/FuzzHandleMessage.
//
// The inputs: the body; the resetq.campaign and resetq.attempts
// attributes as sent; signing (the worker requires signatures) and sig
// (the signature sent; "" means a correct one); and cognito, which picks
// what Cognito answers the fuzzed job (success, UserNotFound, one
// InternalError then success, one throttle then success).
func FuzzHandleMessage(f *testing.F) {
	for _, s := range append(jobtest.PoisonBodies(), jobBody(pool, "alice"), jobBody("us-east-1_Other", "bob")) {
		f.Add([]byte(s), "c1", "", false, "", uint8(0))
	}
	f.Add([]byte(jobBody(pool, "carol")), "c1", "7", true, "", uint8(2))
	f.Add([]byte(jobBody(pool, "dave")), "", "-1", true, "00", uint8(3))
	f.Add([]byte(jobBody(pool, "erin")), "c\n2", "x", false, "", uint8(1))

	key := []byte(strings.Repeat("k", job.MinKeyLen))
	f.Fuzz(func(t *testing.T, body []byte, campaign, attempts string, signing bool, sig string, cognito uint8) {
		var mu sync.Mutex
		calls := map[string]int{}
		b := newBundle(func(_ context.Context, j job.Job) error {
			mu.Lock()
			defer mu.Unlock()
			calls[j.Username]++
			if j.Username == "sentinel" {
				return nil
			}
			switch n := calls[j.Username]; cognito % 4 {
			case 1:
				return codeErr("UserNotFoundException", "User does not exist.")
			case 2:
				if n == 1 {
					return codeErr("InternalErrorException", "try again")
				}
			case 3:
				if n == 1 {
					return codeErr("TooManyRequestsException", "Rate exceeded")
				}
			}
			return nil
		})
		b.cfg.AllowedPools = map[string]bool{pool: true}
		attrs := map[string]job.Attribute{}
		if campaign != "" {
			attrs[job.AttrCampaign] = job.Attribute{DataType: "String", StringValue: campaign}
		}
		if attempts != "" {
			attrs[job.AttrAttempts] = job.Attribute{DataType: "Number", StringValue: attempts}
		}
		if signing {
			b.cfg.SigningKeys = [][]byte{key}
			if sig == "" {
				sig = job.Sign(key, campaign, string(body))
			}
			attrs[job.AttrSignature] = job.Attribute{DataType: "String", StringValue: sig}
		}
		fuzzed := b.q.push(string(body), attrs)
		sentinelAttrs := map[string]job.Attribute{job.AttrSignature: {DataType: "String", StringValue: job.Sign(key, "", jobBody(pool, "sentinel"))}}
		b.q.push(jobBody(pool, "sentinel"), sentinelAttrs)
		b.run(t) // fails the test if the worker does not return by itself

		// What the fuzzed message should come to.
		m := job.Message{Body: string(body), Attributes: attrs}
		var wantReason string
		parsed, perr := job.ParseJob(body)
		switch {
		case signing && job.VerifySignature(b.cfg.SigningKeys, m) != nil:
			wantReason = job.ReasonBadSignature
		case perr != nil:
			wantReason = job.ReasonInvalidJob
		case parsed.UserPoolID != pool:
			wantReason = job.ReasonPoolNotAllowed
		case parsed.Username == "sentinel":
		case cognito%4 == 1:
			wantReason = "UserNotFoundException"
		case cognito%4 == 2 && priorAttempts(b.cfg.SigningKeys, m)+1 >= b.cfg.Policy.MaxAttempts:
			wantReason = job.ReasonAttemptsExhausted // the attempts it arrived with, plus the failed call
		}

		visible, held, events, _ := b.q.snapshot()
		if len(visible) != 0 || held != 0 {
			t.Fatalf("left on the queue: %d visible, %d held; events %v", len(visible), held, events)
		}
		var ours []job.Outgoing
		for _, d := range b.dlq.all() {
			if d.Body != jobBody(pool, "sentinel") || string(body) == jobBody(pool, "sentinel") {
				ours = append(ours, d)
			}
		}
		if wantReason != "" {
			if len(ours) != 1 || ours[0].Body != string(body) || ours[0].Attributes[job.AttrReason].StringValue != wantReason {
				t.Fatalf("want one dead letter %s with the body unchanged, got %+v", wantReason, ours)
			}
			if (wantReason == job.ReasonBadSignature || wantReason == job.ReasonInvalidJob || wantReason == job.ReasonPoolNotAllowed) &&
				calls[parsed.Username] > 0 && parsed.Username != "sentinel" {
				t.Fatalf("a %s job reached Cognito", wantReason)
			}
		} else {
			if len(ours) != 0 {
				t.Fatalf("dead-lettered %+v, want the user reset", ours)
			}
			if calls[parsed.Username] == 0 {
				t.Fatal("a valid job never reached Cognito")
			}
		}
		if calls["sentinel"] == 0 {
			t.Fatal("the valid job after the fuzzed one was not reset: the worker stalled on it")
		}
		if !slices.ContainsFunc(events, func(e string) bool { return e == fmt.Sprintf("delete:%s", fuzzed) }) {
			t.Fatalf("the fuzzed message was never deleted from the source; events %v", events)
		}
	})
}

// priorAttempts are the attempts m arrives with, as the worker takes them.
func priorAttempts(keys [][]byte, m job.Message) int {
	s, _ := job.StateOf(keys, m)
	return s.Attempts
}
