package job

import (
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

// Campaign is the message's resetq.campaign attribute, or "".
func (m Message) Campaign() string { return m.Attributes[AttrCampaign].StringValue }

// PriorAttempts is the resetq.attempts attribute a retried job carries.
func (m Message) PriorAttempts() int {
	n, err := strconv.Atoi(m.Attributes[AttrAttempts].StringValue)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// JobID is the job's ID: resetq.job-id, or the message's own ID for a
// job's first message.
func (m Message) JobID() string {
	if id := m.Attributes[AttrJobID].StringValue; id != "" {
		return id
	}
	return m.ID
}

// StepsDone are the steps a sent-back copy says were done (resetq.steps).
func (m Message) StepsDone() []string {
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

// DeferredSince is the resetq.deferred_since attribute, or zero.
func (m Message) DeferredSince() time.Time {
	t, err := time.Parse(time.RFC3339, m.Attributes[AttrDeferredSince].StringValue)
	if err != nil {
		return time.Time{}
	}
	return t
}
