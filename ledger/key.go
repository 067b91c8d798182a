package ledger

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
)

// RowShards is how many partitions a campaign's rows are spread over. It
// is part of the table's layout: changing it loses the rows already
// written (they would be looked for under other keys).
const RowShards = 32

// CounterShards is how many counter items a campaign's counts are spread
// over: as many as one BatchGetItem reads, so status reads them in one call.
// Like RowShards it is part of the layout.
const CounterShards = 100

// Key is one user of one campaign in one user pool.
type Key struct {
	Campaign string
	Pool     string // the user pool ID
	User     string // the username as the job names it
	// Fold: the pool compares usernames case-insensitively (its
	// UsernameConfiguration.CaseSensitive is false), so "Alice" and
	// "alice" are one user and one row.
	Fold bool
}

// Compared is the username as the pool compares it: lower-cased when the
// pool folds case, as enqueue's de-duplication and the worker's per-user
// lock compare it.
func (k Key) Compared() string {
	if k.Fold {
		return strings.ToLower(k.User)
	}
	return k.User
}

// Validate checks that k can be a row: every part set, and a pool ID
// without the separators the layout uses ('#' and ':', never in a pool ID).
func (k Key) Validate() error {
	switch {
	case k.Campaign == "" || k.Pool == "" || k.User == "":
		return fmt.Errorf("ledger key %q/%q/%q: campaign, pool and user are required", k.Campaign, k.Pool, k.User)
	case strings.ContainsAny(k.Pool, "#:"):
		return fmt.Errorf("ledger key: pool %q is not a user pool ID", k.Pool)
	}
	return nil
}

// hash is FNV-1a of the pool and the compared username: the row's and the
// counter's shard. It must never change (see RowShards).
func (k Key) hash() uint32 {
	h := fnv.New32a()
	h.Write([]byte(k.Pool))
	h.Write([]byte{0})
	h.Write([]byte(k.Compared()))
	return h.Sum32()
}

// rowShard is the partition of k's row, in [0, RowShards).
func (k Key) rowShard() int { return int(k.hash() % RowShards) }

// counterShard is the counter item k's outcome is counted in.
func (k Key) counterShard() int { return int(k.hash() % CounterShards) }

// Partition and sort keys. A row's partition key is the campaign and a
// suffix of fixed length, "#r" and two digits; a counter item's "#c" and
// two digits: no campaign's keys can be another's.
func rowPK(campaign string, shard int) string     { return fmt.Sprintf("%s#r%02d", campaign, shard) }
func counterPK(campaign string, shard int) string { return fmt.Sprintf("%s#c%02d", campaign, shard) }

// counterSK is the sort key of every counter item.
const counterSK = "counts"

func (k Key) pk() string { return rowPK(k.Campaign, k.rowShard()) }
func (k Key) sk() string { return k.Pool + "#" + k.Compared() }

// Step is something the campaign did to a user, recorded with its time.
// The names are those of the job's resetq.steps attribute.
type Step string

const (
	StepSignedOut      Step = "signed_out"      // AdminUserGlobalSignOut: the user's refresh tokens refused
	StepPasswordKilled Step = "password_killed" // the old password replaced by a random one (no code sent)
	StepReset          Step = "reset"           // AdminResetUserPassword answered: a code sent, the user RESET_REQUIRED
	StepReinvited      Step = "reinvited"       // a user who never signed in got a new invitation
	StepDisabled       Step = "disabled"        // a user who cannot receive a code was disabled
	StepDeadLettered   Step = "dead_lettered"   // the job went to the DLQ; the detail is its reason
)

// Steps are the steps a row records, in the order of the row's attributes.
var Steps = []Step{StepSignedOut, StepPasswordKilled, StepReset, StepReinvited, StepDisabled, StepDeadLettered}

// Valid reports whether s is one of Steps.
func (s Step) Valid() bool {
	for _, v := range Steps {
		if s == v {
			return true
		}
	}
	return false
}

// Outcome reports whether s ends a job: the row's outcome, counted.
func (s Step) Outcome() bool { return s.Done() || s == StepDisabled || s == StepDeadLettered }

// Done reports whether s finishes the user for the campaign: no claim is
// granted after it, and no later outcome replaces it. A dead letter and a
// disable are outcomes but not done: a redriven job may claim the user
// again (a disabled user may have been enabled again since, and then needs
// the code the disable stood in for).
func (s Step) Done() bool { return s == StepReset || s == StepReinvited }

// attr is the row attribute holding the step's first time.
func (s Step) attr() string { return string(s) + "_at" }

var errStep = errors.New("unknown step")
