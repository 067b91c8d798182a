package job

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// State is a job's progress, carried from one of its messages to the next
// (a sent-back copy) in the resetq.job-id, resetq.attempts,
// resetq.deferred_since and resetq.steps attributes.
type State struct {
	JobID         string    // the SQS message ID of the job's first message
	Attempts      int       // failed attempts so far (throttles do not count)
	DeferredSince time.Time // when open circuits began to defer it; zero: not deferred
	Steps         []string  // steps done, in order: reset, password_killed, signed_out, reinvited, disabled
}

// The steps a job records (resetq.steps), each once it is done.
const (
	StepReset          = "reset"           // AdminResetUserPassword: the code went
	StepPasswordKilled = "password_killed" // AdminSetUserPassword with a password nobody knows
	StepSignedOut      = "signed_out"      // AdminUserGlobalSignOut
	StepReinvited      = "reinvited"       // AdminCreateUser RESEND: a new invitation went
	StepDisabled       = "disabled"        // AdminDisableUser
)

// Steps are the steps a job can record.
var Steps = []string{StepReset, StepPasswordKilled, StepSignedOut, StepReinvited, StepDisabled}

// StateOf reads m's progress. Anyone who can write to the queue can write
// these attributes, and SQS's own move task copies them, so with signing
// keys they are taken only under a state signature a worker made for this
// very job (its signature, hence its body, campaign and options) with one
// of keys; otherwise m counts as its job's first message (its own ID, no
// attempts, no deferral, no steps) and verified is false. Without keys
// nothing can be verified: the attributes are taken as they are and
// verified is false, and the worker rests no security decision on them.
func StateOf(keys [][]byte, m Message) (s State, verified bool) {
	fresh := State{JobID: m.ID}
	claimed := claimedState(m)
	if len(keys) == 0 {
		return claimed, false
	}
	got, err := hex.DecodeString(m.Attributes[AttrStateSignature].StringValue)
	if err != nil || len(got) != sha256.Size {
		return fresh, false
	}
	for _, k := range keys {
		if hmac.Equal(got, stateMAC(k, m, claimed)) {
			return claimed, true
		}
	}
	return fresh, false
}

// claimedState is what m's attributes say, each malformed one read as absent.
func claimedState(m Message) State {
	s := State{JobID: m.ID}
	if id := m.Attributes[AttrJobID].StringValue; id != "" {
		s.JobID = id
	}
	if n, err := strconv.Atoi(m.Attributes[AttrAttempts].StringValue); err == nil && n > 0 {
		s.Attempts = n
	}
	if t, err := time.Parse(time.RFC3339, m.Attributes[AttrDeferredSince].StringValue); err == nil {
		s.DeferredSince = t
	}
	if v := m.Attributes[AttrSteps].StringValue; v != "" {
		for _, step := range strings.Split(v, ",") {
			if slices.Contains(Steps, step) {
				s.Steps = append(s.Steps, step)
			}
		}
	}
	return s
}

// Attributes are s as message attributes (String values), with its state
// signature for m's job under key when key is not nil.
func (s State) Attributes(key []byte, m Message) map[string]string {
	out := map[string]string{AttrJobID: s.JobID, AttrAttempts: strconv.Itoa(s.Attempts)}
	if !s.DeferredSince.IsZero() {
		out[AttrDeferredSince] = s.DeferredSince.UTC().Format(time.RFC3339)
	}
	if len(s.Steps) > 0 {
		out[AttrSteps] = strings.Join(s.Steps, ",")
	}
	if key != nil {
		out[AttrStateSignature] = hex.EncodeToString(stateMAC(key, m, s)) // stateMAC signs the time as written: whole seconds
	}
	return out
}

// stateMAC signs s for the job of m: its job signature (which covers its
// body, campaign and options) or, for an unsigned job, its body and
// attributes that ask for something. Each field is quoted, so no field can
// be shifted into another.
func stateMAC(key []byte, m Message, s State) []byte {
	mac := hmac.New(sha256.New, key)
	since := ""
	if !s.DeferredSince.IsZero() {
		since = s.DeferredSince.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(mac, "resetq-state\n%q\n%d\n%q\n%q\n%q\n%q\n%q\n", s.JobID, s.Attempts, since, strings.Join(s.Steps, ","),
		strings.ToLower(m.Attributes[AttrSignature].StringValue), m.Campaign(), m.Body)
	for _, name := range SignedOptions {
		if a, ok := m.Attributes[name]; ok {
			fmt.Fprintf(mac, "%s=%q\n", name, a.StringValue)
		}
	}
	return mac.Sum(nil)
}
