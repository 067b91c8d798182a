package report

import (
	"cmp"
	"strings"
	"time"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/userpool"
)

// Categories of a user in a report from the campaign's ledger
// (CategorizeCampaign). completed, pending, disabled and not_found keep
// their names, with the ledger's meaning: completed and pending only for a
// user the campaign reset, disabled only for one the campaign disabled.
const (
	CategoryReinvited         = "reinvited"           // re-invited by the campaign, not signed in since (FORCE_CHANGE_PASSWORD)
	CategoryReinvitedSignedIn = "reinvited_signed_in" // re-invited by the campaign, signed in since (CONFIRMED)
	CategoryDisabledBefore    = "disabled_before"     // disabled, not by the campaign (before it, or by someone else)
	CategoryDeadLettered      = "dead_lettered"       // the campaign's job went to the DLQ; Reason says why
	CategoryEnqueued          = "enqueued"            // enqueued, no outcome yet
	CategoryNotEnqueued       = "not_enqueued"        // named by the source, never enqueued in the campaign
)

// CampaignCategories are the categories every report from a ledger counts,
// even at zero.
var CampaignCategories = []string{
	CategoryCompleted, CategoryPending, CategoryReinvited, CategoryReinvitedSignedIn, CategoryDisabled,
	CategoryDisabledBefore, CategoryDeadLettered, CategoryEnqueued, CategoryNotEnqueued, CategoryNotFound,
}

// StepDeadLettered is the ledger's step of a job sent to the DLQ; the
// other steps are job.Step*.
const StepDeadLettered = "dead_lettered"

// CampaignSteps are the ledger's steps, in the order of the records'
// columns.
var CampaignSteps = []string{job.StepSignedOut, job.StepPasswordKilled, job.StepReset, job.StepReinvited, job.StepDisabled, StepDeadLettered}

// Trail is what the campaign's ledger says it did to one user: one row.
type Trail struct {
	Pool     string
	User     string               // the username as the pool compares it (lower-cased when it folds case)
	Username string               // the username as first written; "" means User
	Enqueued time.Time            // the first enqueue; zero if never enqueued through the ledger
	Steps    map[string]time.Time // each step's first time, by CampaignSteps' names
	Reason   string               // the last dead letter's reason
}

// name is the username to read the user by.
func (t *Trail) name() string { return cmp.Or(t.Username, t.User) }

func (t *Trail) has(step string) bool { _, ok := t.Steps[step]; return ok }

// CategorizeCampaign is the category of a user from what the campaign did
// (t; nil: the source names the user and the ledger has no row) and the
// user's state now (u; nil: not found), with a detail that says why. Only
// a user the campaign reset is completed, and only when CONFIRMED (leaving
// RESET_REQUIRED needs the code), whatever the dates say: a user the
// campaign did not reset, CONFIRMED and modified since, is not.
func CategorizeCampaign(t *Trail, u *userpool.User) (category, detail string) {
	switch {
	case t == nil && u == nil:
		return CategoryNotFound, "never enqueued; no such user"
	case t == nil:
		return CategoryNotEnqueued, "never enqueued in the campaign"
	case u == nil:
		return CategoryNotFound, t.done() + "; no such user now"
	}
	switch {
	case t.has(job.StepReset):
		return afterReset.categorize(u)
	case t.has(job.StepReinvited):
		return afterReinvite.categorize(u)
	case t.has(job.StepDisabled):
		detail = "disabled by the campaign"
		if t.Reason != "" {
			detail += " (dead-lettered: " + t.Reason + ")"
		}
		if u.Enabled {
			detail += "; enabled again since"
		}
		return CategoryDisabled, detail
	case !u.Enabled:
		return CategoryDisabledBefore, "disabled, not by the campaign" + t.deadLetter("; ")
	case t.deadLettered():
		return CategoryDeadLettered, t.deadLetter("")
	}
	return CategoryEnqueued, "enqueued, no outcome yet"
}

// after is where a user stands after a step that sent a code or an
// invitation: used (CONFIRMED: a password of the user's own), waiting (in
// status wait: not used yet), else in another status.
type after struct {
	step                string
	used, usedDetail    string
	wait                string
	waiting, waitDetail string
}

var (
	afterReset    = after{"reset", CategoryCompleted, "reset, a new password since", "RESET_REQUIRED", CategoryPending, "reset, code not used yet"}
	afterReinvite = after{"re-invited", CategoryReinvitedSignedIn, "re-invited, signed in since", "FORCE_CHANGE_PASSWORD", CategoryReinvited, "re-invited, not signed in yet"}
)

func (a after) categorize(u *userpool.User) (category, detail string) {
	switch u.Status {
	case "CONFIRMED":
		category, detail = a.used, a.usedDetail
	case a.wait:
		category, detail = a.waiting, a.waitDetail
	default:
		category, detail = otherStatus(u.Status), a.step+"; "+cmp.Or(u.Status, "no status")+" now"
	}
	if !u.Enabled {
		detail += "; disabled since, not by the campaign"
	}
	return category, detail
}

// otherStatus is the category of a status no rule names: the status in
// lower case.
func otherStatus(status string) string {
	if status == "" {
		return "unknown"
	}
	return strings.ToLower(status)
}

// done is what the campaign did, for a user no longer found.
func (t *Trail) done() string {
	switch {
	case t.has(job.StepReset):
		return "reset"
	case t.has(job.StepReinvited):
		return "re-invited"
	case t.has(job.StepDisabled):
		return "disabled by the campaign"
	case t.deadLettered():
		return t.deadLetter("")
	}
	return "enqueued, no outcome"
}

// deadLettered reports whether the campaign's job of the user went to the DLQ.
func (t *Trail) deadLettered() bool { return t.Reason != "" || t.has(StepDeadLettered) }

// deadLetter is "dead-lettered: REASON" after prefix, or "" when the job
// was never dead-lettered.
func (t *Trail) deadLetter(prefix string) string {
	if !t.deadLettered() {
		return ""
	}
	return prefix + "dead-lettered: " + cmp.Or(t.Reason, "no reason recorded")
}

// NewCampaignRecord is the record of a user of the campaign (t; nil: not
// in the ledger), u its state (nil: not found, under name) in pool.
func NewCampaignRecord(pool, name string, t *Trail, u *userpool.User) Record {
	r := NewRecord(pool, name, u, time.Time{})
	r.Category, r.Detail = CategorizeCampaign(t, u)
	if t != nil {
		r.Reason = t.Reason
		if !t.Enqueued.IsZero() {
			at := t.Enqueued.UTC()
			r.Enqueued = &at
		}
		for s, at := range t.Steps {
			if r.Steps == nil {
				r.Steps = map[string]time.Time{}
			}
			r.Steps[s] = at.UTC()
		}
	}
	return r
}
