package worker

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/resetq/resetq/job"
)

var (
	oldKey = []byte("0123456789abcdef0123456789abcdef-old")
	newKey = []byte("fedcba9876543210fedcba9876543210-new")
)

func signed(key []byte, campaign, body string) job.Message {
	attrs := map[string]job.Attribute{job.AttrSignature: {DataType: "String", StringValue: job.Sign(key, campaign, body)}}
	if campaign != "" {
		attrs[job.AttrCampaign] = job.Attribute{DataType: "String", StringValue: campaign}
	}
	return job.Message{Body: body, Attributes: attrs}
}

// TestSignedJobs: with signing keys, only jobs signed with one of them
// reach Cognito; the others are dead-lettered as bad_signature with their
// body unchanged, and a retried job keeps its signature.
func TestSignedJobs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	called := map[string]int{}
	b := newBundle(func(_ context.Context, j job.Job) error {
		mu.Lock()
		defer mu.Unlock()
		called[j.Username]++
		if j.Username == "flaky" && called[j.Username] == 1 {
			return codeErr("InternalErrorException", "try again")
		}
		return nil
	})
	b.cfg.SigningKeys = [][]byte{newKey, oldKey}
	push := func(m job.Message) { b.q.push(m.Body, m.Attributes) }
	push(signed(newKey, "c1", jobBody(pool, "alice")))
	push(signed(oldKey, "c1", jobBody(pool, "bob")))
	push(signed(newKey, "c1", jobBody(pool, "flaky")))
	push(job.Message{Body: jobBody(pool, "unsigned")})
	forged := signed(newKey, "c1", jobBody(pool, "alice"))
	forged.Body = jobBody(pool, "victim")
	push(forged)
	push(signed([]byte("a-key-the-worker-does-not-know-at-all"), "c1", jobBody(pool, "eve")))
	b.run(t)

	if len(called) != 3 || called["alice"] != 1 || called["bob"] != 1 || called["flaky"] != 2 {
		t.Fatalf("Cognito calls %v, want alice, bob once and flaky twice", called)
	}
	dl := b.dlq.all()
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3: %+v", len(dl), dl)
	}
	bodies := map[string]bool{}
	for _, d := range dl {
		if d.Attributes[job.AttrReason].StringValue != job.ReasonBadSignature {
			t.Errorf("reason %q, want %s", d.Attributes[job.AttrReason].StringValue, job.ReasonBadSignature)
		}
		bodies[d.Body] = true
	}
	for _, u := range []string{"unsigned", "victim", "eve"} {
		if !bodies[jobBody(pool, u)] {
			t.Errorf("no dead letter with %s's body unchanged", u)
		}
	}
	_, _, _, sent := b.q.snapshot()
	if len(sent) != 1 || sent[0].Attributes[job.AttrSignature].StringValue != job.Sign(newKey, "c1", jobBody(pool, "flaky")) {
		t.Fatalf("requeued %+v, want flaky's job with its signature", sent)
	}
}

func TestWithAttributesKeepsSignature(t *testing.T) {
	t.Parallel()
	orig := signed(newKey, "c", jobBody(pool, "a")).Attributes
	for _, k := range []string{"x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "zz"} {
		orig[k] = job.Attribute{DataType: "String", StringValue: "v"}
	}
	got := withAttributes(orig, map[string]string{job.AttrReason: "r", job.AttrError: "e", job.AttrAttempts: "1", job.AttrFailedAt: "t"})
	if _, ok := got[job.AttrSignature]; !ok || len(got) != maxAttributes {
		t.Fatalf("signature dropped or %d attributes: %v", len(got), got)
	}
}

// TestHashUserKeyed: with a key, the logged hash of a username depends on
// the key, so a list of usernames hashed without it matches nothing.
func TestHashUserKeyed(t *testing.T) {
	t.Parallel()
	plain := hashUser(nil, "alice@example.com")
	k1 := hashUser([]byte("deployment-one-key-0123456789abcdef"), "alice@example.com")
	k2 := hashUser([]byte("deployment-two-key-0123456789abcdef"), "alice@example.com")
	if plain == k1 || k1 == k2 || !strings.HasPrefix(k1, "hmac:") || !strings.HasPrefix(plain, "sha256:") {
		t.Fatalf("hashes %q %q %q: want a keyed hash that differs by key", plain, k1, k2)
	}
	if k1 != hashUser([]byte("deployment-one-key-0123456789abcdef"), "alice@example.com") {
		t.Fatal("the keyed hash is not stable")
	}
}
