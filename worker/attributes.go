package worker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strings"

	"github.com/resetq/resetq/job"
)

// kept are the attributes never dropped to make room: who sent the job,
// and what it asks for (every signed option, or the signature fails).
var kept = append([]string{job.AttrCampaign, job.AttrSignature}, job.SignedOptions...)

// maxAttributes is SQS's limit of message attributes per message.
const maxAttributes = 10

// maxErrorLen bounds resetq.error.
const maxErrorLen = 1024

// without returns attrs less the named ones.
func without(attrs map[string]job.Attribute, names ...string) map[string]job.Attribute {
	out := make(map[string]job.Attribute, len(attrs))
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
func essentials(attrs map[string]job.Attribute) map[string]job.Attribute {
	out := map[string]job.Attribute{}
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
func withAttributes(orig map[string]job.Attribute, add map[string]string) map[string]job.Attribute {
	out := make(map[string]job.Attribute, len(orig)+len(add))
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
	for _, k := range spare {
		if len(out)+len(add) <= maxAttributes {
			break
		}
		if _, ok := add[k]; ok {
			add = withoutKey(add, k)
		}
	}
	for k, v := range add {
		out[k] = job.Attribute{DataType: "String", StringValue: v}
	}
	return out
}

// spare are the added attributes given up, in this order, when the kept
// ones and the record still exceed SQS's limit (a job with every signed
// option, dead-lettered with steps and a remediation): SQS dates the
// message itself (SentTimestamp), and the attempts matter least to the
// follow-up (resetq dlq shows them blank).
var spare = []string{job.AttrFailedAt, job.AttrAttempts}

// withoutKey is add less k, add unchanged.
func withoutKey(add map[string]string, k string) map[string]string {
	out := make(map[string]string, len(add))
	for key, v := range add {
		if key != k {
			out[key] = v
		}
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
	return job.Truncate(s, maxErrorLen)
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
