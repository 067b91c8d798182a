package job

import "time"

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
	// AttrIncident "true" asks for everything an incident needs for this
	// job's user: the password killed at once when the code must wait, the
	// sessions ended after it, a re-invitation for a user who never signed
	// in, and the unreachable disabled (resetq enqueue --incident).
	AttrIncident = "resetq.incident"
	// AttrSteps lists the steps done, in order, e.g.
	// "password_killed,signed_out" on a sent-back copy or
	// "disabled,signed_out" on a DLQ record. A copy's word is taken only
	// under a worker's state signature (AttrStateSignature).
	AttrSteps = "resetq.steps"
	// AttrStateSignature signs a sent-back copy's progress (resetq.job-id,
	// resetq.attempts, resetq.deferred_since, resetq.steps) for the job it
	// belongs to, so that with signing keys nobody who can write to the
	// queue can forge it. See SignState.
	AttrStateSignature = "resetq.state-signature"
	// AttrRemediation, on a DLQ record, says what was done for a user who
	// could not be reset: "disabled".
	AttrRemediation = "resetq.remediation"
)

// Campaign is the message's resetq.campaign attribute, or "".
func (m Message) Campaign() string { return m.Attributes[AttrCampaign].StringValue }

// The progress attributes (resetq.job-id, resetq.attempts,
// resetq.deferred_since, resetq.steps) are read through StateOf, which
// takes them only where they can be trusted.
