package dlq

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/resetq/resetq/job"
)

// NoReason is how a DLQ message without resetq.reason is counted: SQS moved
// it by itself after maxReceiveCount receives.
const NoReason = "(no reason: maxReceiveCount)"

// ReasonNone is the Filter.Reason that selects messages without resetq.reason.
const ReasonNone = "none"

// JobID is the job m is of: its resetq.job-id, or its own message ID when
// it has none (records written before the attribute existed).
func JobID(m job.Message) string {
	if id := m.Attributes[job.AttrJobID].StringValue; id != "" {
		return id
	}
	return m.ID
}

// Job is a DLQ message as the operator sees it.
type Job struct {
	MessageID string `json:"message_id"`
	JobID     string `json:"job_id"`
	Records   int    `json:"records"` // DLQ messages of this job read (2 or more: dead-lettered again before its delete)
	Pool      string `json:"pool,omitempty"`
	Username  string `json:"username,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	Reason    string `json:"reason"`
	Error     string `json:"error,omitempty"`
	Attempts  string `json:"attempts,omitempty"`
	FailedAt  string `json:"failed_at,omitempty"`
	// Steps are the steps done before the job failed (signed_out,
	// disabled); Remediation what was done for its user instead of a
	// reset ("disabled": re-enable after checking the person out of band).
	Steps       string `json:"steps,omitempty"`
	Remediation string `json:"remediation,omitempty"`
	Body        string `json:"body,omitempty"` // only when it is not a valid job
	// Ledger is the user's outcome in the campaign ledger now (reset,
	// reinvited, disabled, dead_lettered; "none": no outcome yet), when
	// the command was given one.
	Ledger string `json:"ledger,omitempty"`
}

// JobOf describes m. A body that is not a job still has its pool and
// username picked out when the JSON allows.
func JobOf(m job.Message) Job {
	j := Job{
		MessageID:   m.ID,
		JobID:       JobID(m),
		Records:     1,
		Campaign:    m.Attributes[job.AttrCampaign].StringValue,
		Reason:      ReasonOf(m),
		Error:       m.Attributes[job.AttrError].StringValue,
		Attempts:    m.Attributes[job.AttrAttempts].StringValue,
		FailedAt:    m.Attributes[job.AttrFailedAt].StringValue,
		Steps:       m.Attributes[job.AttrSteps].StringValue,
		Remediation: m.Attributes[job.AttrRemediation].StringValue,
	}
	if job, err := job.ParseJob([]byte(m.Body)); err == nil {
		j.Pool, j.Username = job.UserPoolID, job.Username
		return j
	}
	var loose struct {
		UserPoolID any `json:"UserPoolId"`
		Username   any
	}
	if json.Unmarshal([]byte(m.Body), &loose) == nil {
		if s, ok := loose.UserPoolID.(string); ok {
			j.Pool = s
		}
		if s, ok := loose.Username.(string); ok {
			j.Username = s
		}
	}
	const maxBody = 200
	j.Body = m.Body
	if len(j.Body) > maxBody {
		j.Body = j.Body[:maxBody] + "..."
	}
	return j
}

// ReasonOf is the message's resetq.reason, or NoReason.
func ReasonOf(m job.Message) string {
	if r := m.Attributes[job.AttrReason].StringValue; r != "" {
		return r
	}
	return NoReason
}

// Filter selects DLQ messages by reason and campaign; empty fields match all.
type Filter struct {
	Reason   string // a resetq.reason, or ReasonNone for messages without one
	Campaign string
	// Skip, when set, leaves the jobs it says true for out (a redrive
	// leaves in the DLQ the jobs whose user the ledger says is done).
	Skip func(job.Message) bool
}

// Match reports whether m passes the filter.
func (f Filter) Match(m job.Message) bool {
	if f.Reason != "" {
		r := m.Attributes[job.AttrReason].StringValue
		if f.Reason == ReasonNone {
			if r != "" {
				return false
			}
		} else if r != f.Reason {
			return false
		}
	}
	if f.Campaign != "" && m.Attributes[job.AttrCampaign].StringValue != f.Campaign {
		return false
	}
	return f.Skip == nil || !f.Skip(m)
}

// Count is one line of a DLQ summary.
type Count struct {
	Reason   string `json:"reason"`
	Campaign string `json:"campaign"`
	Jobs     int    `json:"jobs"`
	Messages int    `json:"messages"` // DLQ records of those jobs: more than Jobs when some were dead-lettered twice
}

// Summary counts the jobs of a DLQ by reason and campaign, each job once
// however many records it has (JobID). A job is counted under its first
// record read.
type Summary struct {
	Total      int     `json:"total"`      // jobs
	Duplicates int     `json:"duplicates"` // records of a job already counted
	Counts     []Count `json:"counts"`
	Scan
}

// Summarize reads the DLQ once (Peek) and counts its jobs.
func Summarize(ctx context.Context, q Queue, cfg ScanConfig) (Summary, error) {
	counts := map[[2]string]*Count{}
	jobs := map[string][2]string{} // job ID -> the key it is counted under
	sc, err := Peek(ctx, q, cfg, func(m job.Message) bool {
		key, dup := jobs[JobID(m)]
		if !dup {
			key = [2]string{ReasonOf(m), m.Attributes[job.AttrCampaign].StringValue}
			jobs[JobID(m)] = key
		}
		c := counts[key]
		if c == nil {
			c = &Count{Reason: key[0], Campaign: key[1]}
			counts[key] = c
		}
		c.Messages++
		if !dup {
			c.Jobs++
		}
		return true
	})
	s := Summary{Total: len(jobs), Duplicates: sc.Read - len(jobs), Scan: sc}
	for _, c := range counts {
		s.Counts = append(s.Counts, *c)
	}
	sort.Slice(s.Counts, func(i, j int) bool {
		a, b := s.Counts[i], s.Counts[j]
		if a.Jobs != b.Jobs {
			return a.Jobs > b.Jobs
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return a.Campaign < b.Campaign
	})
	return s, err
}

// List reads the DLQ once (Peek) and returns the jobs passing f, each once
// (JobID) with its number of records, up to max jobs (0: no maximum).
func List(ctx context.Context, q Queue, cfg ScanConfig, f Filter, max int) ([]Job, Scan, error) {
	var jobs []Job
	index := map[string]int{} // job ID -> its place in jobs
	sc, err := Peek(ctx, q, cfg, func(m job.Message) bool {
		if !f.Match(m) {
			return true
		}
		if i, ok := index[JobID(m)]; ok {
			jobs[i].Records++
			return true
		}
		if max > 0 && len(jobs) >= max {
			return false // one more job than shown: the pass is limited
		}
		index[JobID(m)] = len(jobs)
		jobs = append(jobs, JobOf(m))
		return true
	})
	return jobs, sc, err
}
