package worker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Message is one SQS message as the worker sees it.
type Message struct {
	ID            string
	ReceiptHandle string
	Body          string
	Attributes    map[string]Attribute // message attributes, as sent
	ReceiveCount  int                  // ApproximateReceiveCount
}

// Attribute is an SQS message attribute.
type Attribute struct {
	DataType    string // String, Number, Binary, or a custom type such as String.x
	StringValue string
	BinaryValue []byte
}

// Outgoing is a message the worker sends: a job back to its queue, or to the DLQ.
type Outgoing struct {
	Body       string
	Attributes map[string]Attribute
	Delay      time.Duration // whole seconds, at most 15 minutes
}

// Message attributes the worker reads and writes.
const (
	AttrCampaign = "resetq.campaign"
	AttrReason   = "resetq.reason"
	AttrError    = "resetq.error"
	AttrAttempts = "resetq.attempts"
	AttrFailedAt = "resetq.failed_at"
	// AttrJobID is the SQS message ID of a job's first message, carried by
	// its sent-back copies and its DLQ record: one job, one ID, however
	// often it was sent back or delivered.
	AttrJobID = "resetq.job-id"
	// AttrDeferredSince is when open circuits began to defer the job.
	AttrDeferredSince = "resetq.deferred_since"
	// AttrGlobalSignOut "true" asks for the user's sessions to be ended
	// (AdminUserGlobalSignOut) before the reset.
	AttrGlobalSignOut = "resetq.global-sign-out"
	// AttrSteps, on a DLQ record, lists the steps done before the job
	// failed, e.g. "signed_out" or "signed_out,disabled".
	AttrSteps = "resetq.steps"
	// AttrRemediation, on a DLQ record, says what was done for a user who
	// could not be reset: "disabled".
	AttrRemediation = "resetq.remediation"
)

// kept are the attributes never dropped to make room: who sent the job,
// and what it asks for.
var kept = []string{AttrCampaign, AttrSignature, AttrGlobalSignOut}

// maxAttributes is SQS's limit of message attributes per message.
const maxAttributes = 10

// maxErrorLen bounds resetq.error.
const maxErrorLen = 1024

// Campaign is the message's resetq.campaign attribute, or "".
func (m Message) Campaign() string { return m.Attributes[AttrCampaign].StringValue }

// priorAttempts is the resetq.attempts attribute a retried job carries.
func (m Message) priorAttempts() int {
	n, err := strconv.Atoi(m.Attributes[AttrAttempts].StringValue)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// jobID is the job's ID: resetq.job-id, or the message's own ID for a
// job's first message.
func (m Message) jobID() string {
	if id := m.Attributes[AttrJobID].StringValue; id != "" {
		return id
	}
	return m.ID
}

// stepsDone are the steps a sent-back copy says were done (resetq.steps).
func (m Message) stepsDone() []string {
	v := m.Attributes[AttrSteps].StringValue
	if v == "" {
		return nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s == "signed_out" { // the only step a copy can skip
			out = append(out, s)
		}
	}
	return out
}

// deferredSince is the resetq.deferred_since attribute, or zero.
func (m Message) deferredSince() time.Time {
	t, err := time.Parse(time.RFC3339, m.Attributes[AttrDeferredSince].StringValue)
	if err != nil {
		return time.Time{}
	}
	return t
}

// without returns attrs less the named ones.
func without(attrs map[string]Attribute, names ...string) map[string]Attribute {
	out := make(map[string]Attribute, len(attrs))
	for k, v := range attrs {
		out[k] = v
	}
	for _, n := range names {
		delete(out, n)
	}
	return out
}

// essentials keeps the attributes that say whose job it is and who sent it:
// the campaign and the signature.
func essentials(attrs map[string]Attribute) map[string]Attribute {
	out := map[string]Attribute{}
	for _, k := range kept {
		if v, ok := attrs[k]; ok {
			out[k] = v
		}
	}
	return out
}

// withAttributes returns the message's attributes plus add (String values).
// SQS allows 10 attributes a message: when the original ones and add exceed
// that, original attributes are dropped (last by name first, never
// resetq.campaign or resetq.signature) so that a failure record is never
// lost to the limit and a signed job stays signed.
func withAttributes(orig map[string]Attribute, add map[string]string) map[string]Attribute {
	out := make(map[string]Attribute, len(orig)+len(add))
	for k, v := range orig {
		if _, replaced := add[k]; !replaced {
			out[k] = v
		}
	}
	if excess := len(out) + len(add) - maxAttributes; excess > 0 {
		names := make([]string, 0, len(out))
		for k := range out {
			if !slices.Contains(kept, k) {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		for i := 0; i < excess && i < len(names); i++ {
			delete(out, names[len(names)-1-i])
		}
	}
	for k, v := range add {
		out[k] = Attribute{DataType: "String", StringValue: v}
	}
	return out
}

// sqsText makes s acceptable as an SQS attribute value: valid characters only
// (SQS accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF),
// at most maxErrorLen bytes.
func sqsText(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == 0x9 || r == 0xA || r == 0xD,
			r >= 0x20 && r <= 0xD7FF,
			r >= 0xE000 && r <= 0xFFFD,
			r >= 0x10000 && r <= 0x10FFFF:
			return r
		}
		return '\uFFFD'
	}, s)
	if s == "" {
		s = "(no message)"
	}
	return truncate(s, maxErrorLen)
}

// hashUser is the username as logs show it by default: the same for the
// same user in every line, so a user's jobs can be followed without the
// name itself being written. With a key it is a keyed hash (HMAC-SHA256),
// which nobody without the key can match against a list of usernames;
// without one a plain SHA-256 prefix, which anyone with such a list can.
func hashUser(key []byte, username string) string {
	if len(key) == 0 {
		sum := sha256.Sum256([]byte(username))
		return "sha256:" + hex.EncodeToString(sum[:8])
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(username))
	return "hmac:" + hex.EncodeToString(mac.Sum(nil)[:8])
}
