package awsproxy

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Fault describes calls to disturb and how. A call matches when Operation
// and BodyContains match; it is then affected with probability Share, as
// long as the fault has affected fewer than Count calls. The first matching
// fault (in the order added) that affects a call wins.
//
// Exactly one action must be set: ErrorCode (with optional Message and
// Status), ResetConnection, Delay, FailEntries or DropResponse. Error and
// reset faults answer the call themselves, so it does not reach the target
// and does not count against a quota; a delayed call is then subject to the
// quota and forwarded. A DropResponse call is forwarded (it takes effect)
// and its answer is lost.
type Fault struct {
	// Operation is the operation to match, e.g. "AdminResetUserPassword"
	// or "DeleteMessageBatch"; "" matches any.
	Operation string
	// BodyContains must occur in the request body, e.g.
	// `"Username":"bob"`; "" matches any body. aws-sdk-go-v2 writes compact
	// JSON with members in the model's order, which for Cognito is
	// case-insensitive alphabetical:
	// {"Username":"bob","UserPoolId":"us-east-1_X"}. Match one member at a
	// time unless you know the order.
	BodyContains string
	// Share is the fraction of matching calls affected; 0 and 1 mean all.
	// The choice uses the proxy's seeded random source (WithSeed).
	Share float64
	// Count is how many calls the fault affects before it stops; 0 means
	// no limit.
	Count int

	// ErrorCode answers the call with this AWS error code, e.g.
	// "InternalErrorException", in the x-amzn-ErrorType header and the
	// body's __type.
	ErrorCode string
	// Message is the error message (default "injected by awsproxy").
	Message string
	// Status is the HTTP status of the error, 400-599 (default 400).
	Status int

	// ResetConnection drops the TCP connection without an answer. The
	// call does not reach the target.
	ResetConnection bool

	// DropResponse forwards the call (subject to the quota), then drops
	// the client's TCP connection instead of passing the target's answer
	// on: the call took effect, and the client cannot know it. This is
	// the ambiguous failure (a timeout or a reset after the request was
	// sent) that makes a client retry something already done.
	DropResponse bool

	// Delay holds the call this long, then forwards it. A client that
	// gives up meanwhile is not forwarded.
	Delay time.Duration

	// FailEntries fails single entries of a batch call (SendMessageBatch,
	// DeleteMessageBatch, ...: a JSON request with an "Entries" list): the
	// first FailEntries entries (only those containing EntryContains, when
	// set) are answered in the response's Failed list with code
	// InternalError (SenderFault false), and the call is forwarded with
	// the other entries, whose results are passed on. So the ledger stays
	// honest: an entry reported Successful really reached the target. A
	// call whose entries all fail is not forwarded (nor counted against a
	// quota).
	FailEntries int
	// EntryContains narrows FailEntries to the entries whose JSON contains
	// it, e.g. `"MessageBody":"{\"UserPoolId\"` or a username.
	EntryContains string
}

// validate checks that f has exactly one valid action.
func (f Fault) validate() error {
	actions := 0
	if f.ErrorCode != "" {
		actions++
	}
	if f.ResetConnection {
		actions++
	}
	if f.Delay > 0 {
		actions++
	}
	if f.FailEntries > 0 {
		actions++
	}
	if f.DropResponse {
		actions++
	}
	switch {
	case actions != 1:
		return fmt.Errorf("want exactly one action (ErrorCode, ResetConnection, Delay, FailEntries, DropResponse), got %d", actions)
	case f.EntryContains != "" && f.FailEntries == 0:
		return errors.New("EntryContains goes with FailEntries")
	case f.ErrorCode == "" && (f.Message != "" || f.Status != 0):
		return errors.New("an ErrorCode is needed for Message and Status")
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("status %d outside 400-599", f.Status)
	case f.Share < 0 || f.Share > 1:
		return fmt.Errorf("share %v outside 0-1", f.Share)
	case f.Count < 0 || f.Delay < 0 || f.FailEntries < 0:
		return errors.New("negative count or delay")
	}
	return nil
}

// AddFault installs f and returns its id for RemoveFault. It panics if f
// does not have exactly one valid action: that is a mistake in the test.
func (p *Proxy) AddFault(f Fault) (id int) {
	if err := f.validate(); err != nil {
		panic(fmt.Sprintf("awsproxy: invalid fault %+v: %v", f, err))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	p.faults = append(p.faults, &faultState{id: p.nextID, Fault: f})
	return p.nextID
}

// RemoveFault uninstalls the fault with this id; unknown ids are ignored.
func (p *Proxy) RemoveFault(id int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.faults {
		if f.id == id {
			p.removed[id] = f.affected
			p.faults = append(p.faults[:i], p.faults[i+1:]...)
			return
		}
	}
}

// Affected reports how many calls the fault with this id has affected so
// far, including after it was removed (0 for an unknown id): per fault,
// where Stats.Faulted counts per operation.
func (p *Proxy) Affected(id int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.id == id {
			return f.affected
		}
	}
	return p.removed[id]
}

// ClearFaults uninstalls all faults.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		p.removed[f.id] = f.affected
	}
	p.faults = nil
}

// matchFault picks the fault that affects a call of op with body, if any,
// and counts it.
func (p *Proxy) matchFault(op string, body []byte) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.faults {
		if f.Operation != "" && f.Operation != op {
			continue
		}
		if f.BodyContains != "" && !bytes.Contains(body, []byte(f.BodyContains)) {
			continue
		}
		if f.Count > 0 && f.affected >= f.Count {
			continue
		}
		if f.Share > 0 && f.Share < 1 && p.rng.Float64() >= f.Share {
			continue
		}
		f.affected++
		p.stats.Faulted[op]++
		return f.Fault, true
	}
	return Fault{}, false
}
