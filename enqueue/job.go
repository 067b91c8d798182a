package enqueue

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/resetq/resetq/job"
)

// Builder turns inputs into validated job bodies.
type Builder struct {
	// Pool is the pool of username inputs; when set, a JSONL job must name it.
	Pool string
	// Metadata is added to every job; a JSONL job's own keys win over it.
	Metadata map[string]string
}

// Build returns the message body for in and its job, or why in is invalid.
// Every body is checked with job.ParseJob, the worker's own validator.
func (b Builder) Build(in Input) (string, job.Job, error) {
	if in.Err != nil {
		return "", job.Job{}, in.Err
	}
	j := job.Job{UserPoolID: b.Pool, Username: in.Username, ClientMetadata: merge(b.Metadata, nil)}
	if in.Job != nil {
		given, err := job.ParseJob(in.Job)
		if err != nil {
			return "", job.Job{}, err
		}
		if b.Pool != "" && given.UserPoolID != b.Pool {
			return "", job.Job{}, fmt.Errorf("UserPoolId %q is not --pool %q", given.UserPoolID, b.Pool)
		}
		j = job.Job{UserPoolID: given.UserPoolID, Username: given.Username, ClientMetadata: merge(b.Metadata, given.ClientMetadata)}
	}
	raw, err := j.Encode()
	if err != nil {
		return "", job.Job{}, err
	}
	return raw, j, nil
}

// merge is base with over's keys on top, or nil when both are empty.
func merge(base, over map[string]string) map[string]string {
	if len(base)+len(over) == 0 {
		return nil
	}
	m := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}

// ParseMetadata parses "k=v,k2=v2" client metadata. Keys must be
// non-empty and distinct; values may be empty and contain "=" but not ",".
// "" is no metadata.
func ParseMetadata(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		switch {
		case !ok:
			return nil, fmt.Errorf("--client-metadata %q: want key=value", kv)
		case k == "":
			return nil, fmt.Errorf("--client-metadata %q: empty key", kv)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--client-metadata: key %q given twice", k)
		}
		m[k] = v
	}
	return m, nil
}

// NewCampaign is a campaign ID for a run started at now: "c-" and the UTC
// time to the second and 6 random hex digits, e.g. c-20261123T120102Z-4f1a9c.
func NewCampaign(now time.Time) string {
	var r [3]byte
	_, _ = rand.Read(r[:])
	return "c-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:])
}

// CheckCampaign is an error unless id can be the resetq.campaign attribute:
// 1-256 bytes of printable UTF-8.
func CheckCampaign(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("--campaign must not be empty")
	case len(id) > 256:
		return fmt.Errorf("--campaign is %d bytes, more than 256", len(id))
	case !utf8.ValidString(id):
		return fmt.Errorf("--campaign is not valid UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return fmt.Errorf("--campaign %q has a control character", id)
		}
	}
	return nil
}
