// Package job is the format of a resetq job: the message body (an
// AdminResetUserPassword request), its resetq.* attributes and its signature.
package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"unicode"
	"unicode/utf8"
)

// MaxBodyBytes bounds a job body. A real AdminResetUserPassword request is
// well under 1 KiB; 64 KiB leaves room for generous ClientMetadata while
// refusing to parse megabytes of nonsense.
const MaxBodyBytes = 64 << 10

// Job is one AdminResetUserPassword request, decoded from an SQS message body.
// The body is exactly the API's request JSON, so a job enqueued with
// `aws sqs send-message --message-body '{"UserPoolId":...,"Username":...}'`
// is accepted as it is.
type Job struct {
	UserPoolID     string
	Username       string
	ClientMetadata map[string]string
}

// Region is the AWS Region of the job's user pool: the part of the pool ID
// before the underscore ("eu-west-1_AbC123" -> "eu-west-1").
func (j Job) Region() string { return regionOf(j.UserPoolID) }

var (
	// poolIDPattern is the API's `[\w-]+_[0-9a-zA-Z]+`, anchored, with the
	// prefix narrowed to a Region name so that a typo cannot send calls to a
	// Region that does not exist.
	poolIDPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+_[0-9a-zA-Z]+$`)
)

func regionOf(poolID string) string {
	for i := 0; i < len(poolID); i++ {
		if poolID[i] == '_' {
			return poolID[:i]
		}
	}
	return ""
}

// ParseJob decodes and validates a job body against the constraints of
// AdminResetUserPassword: one JSON object, fields UserPoolId (1-55 chars,
// Region-prefixed pool ID), Username (1-128 chars of letters, marks,
// symbols, numbers and punctuation) and optional ClientMetadata (an object
// of strings); each field at most once, exact names, nothing else, valid
// UTF-8, at most MaxBodyBytes. The error says what is wrong, for the DLQ.
func ParseJob(body []byte) (Job, error) {
	var j Job
	if len(body) > MaxBodyBytes {
		return j, fmt.Errorf("body is %d bytes, more than the %d allowed", len(body), MaxBodyBytes)
	}
	if !utf8.Valid(body) {
		return j, errors.New("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := expectDelim(dec, '{', "body"); err != nil {
		return j, err
	}
	seen := map[string]bool{}
	for dec.More() {
		key, err := stringToken(dec, "field name")
		if err != nil {
			return j, err
		}
		if seen[key] {
			return j, fmt.Errorf("field %q appears more than once", key)
		}
		seen[key] = true
		switch key {
		case "UserPoolId":
			j.UserPoolID, err = stringToken(dec, "UserPoolId")
		case "Username":
			j.Username, err = stringToken(dec, "Username")
		case "ClientMetadata":
			j.ClientMetadata, err = stringMap(dec, "ClientMetadata")
		default:
			return j, fmt.Errorf("unknown field %q", Truncate(key, 64))
		}
		if err != nil {
			return j, err
		}
	}
	if err := expectDelim(dec, '}', "body"); err != nil {
		return j, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return j, errors.New("body has data after the JSON object")
	}
	return j, j.Validate()
}

// Encode returns j as a message body: AdminResetUserPassword's request
// JSON, which ParseJob reads back as j. An invalid j is an error.
func (j Job) Encode() (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" stays "<": the body reads as written
	if err := enc.Encode(body(j)); err != nil {
		return "", fmt.Errorf("encode job: %w", err)
	}
	raw := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if _, err := ParseJob(raw); err != nil { // the worker's own check, size included
		return "", err
	}
	return string(raw), nil
}

// body is the wire form of a Job: the API's field names.
type body struct {
	UserPoolID     string            `json:"UserPoolId"`
	Username       string            `json:"Username"`
	ClientMetadata map[string]string `json:"ClientMetadata,omitempty"`
}

// MustBody is the message body of the job for pool and username; it
// panics on an invalid job. For tools and tests that build jobs from
// known-good values (regexp.MustCompile's convention).
func MustBody(pool, username string) string {
	b, err := Job{UserPoolID: pool, Username: username}.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// Validate checks the field constraints of the API.
func (j Job) Validate() error {
	if err := ValidatePoolID(j.UserPoolID); err != nil {
		return err
	}
	switch n := utf8.RuneCountInString(j.Username); {
	case n == 0:
		return errors.New("field Username is required")
	case n > 128:
		return fmt.Errorf("field Username is %d characters, more than 128", n)
	}
	for _, r := range j.Username {
		if r == utf8.RuneError {
			// What a lone UTF-16 surrogate escape ("\ud800") or a broken
			// encoding decodes to: the name meant cannot be known.
			return errors.New("field Username has U+FFFD, the replacement character (a lone surrogate escape or a broken encoding)")
		}
		if !unicode.In(r, unicode.L, unicode.M, unicode.S, unicode.N, unicode.P) {
			return fmt.Errorf("field Username has a character not allowed by the API (%U)", r)
		}
	}
	return nil
}

// ValidatePoolID checks a user pool ID as Validate checks a job's UserPoolId.
func ValidatePoolID(id string) error {
	switch n := utf8.RuneCountInString(id); {
	case n == 0:
		return errors.New("field UserPoolId is required")
	case n > 55:
		return fmt.Errorf("field UserPoolId is %d characters, more than 55", n)
	case !poolIDPattern.MatchString(id):
		return fmt.Errorf("field UserPoolId %q is not a pool ID of the form <region>_<id>", Truncate(id, 64))
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s is not a JSON object: %w", what, syntaxErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%s is not a JSON object", what)
	}
	return nil
}

func stringToken(dec *json.Decoder, what string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, syntaxErr(err))
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%s must be a string, not %s", what, kindOf(tok))
	}
	return s, nil
}

func stringMap(dec *json.Decoder, what string) (map[string]string, error) {
	if err := expectDelim(dec, '{', what); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for dec.More() {
		k, err := stringToken(dec, what+" key")
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%s key %q appears more than once", what, Truncate(k, 64))
		}
		v, err := stringToken(dec, fmt.Sprintf("%s[%q]", what, Truncate(k, 64)))
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	if err := expectDelim(dec, '}', what); err != nil {
		return nil, err
	}
	return m, nil
}

func syntaxErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func kindOf(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case json.Delim:
		return "an object or array"
	}
	return fmt.Sprintf("%T", tok)
}

// Truncate cuts s after at most n bytes, on a rune boundary, and marks the cut with "...".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// knownRegions are the Regions of every AWS partition in aws-sdk-go-v2's
// endpoint rules (internal/endpoints/awsrulesfn/partitions.json, v1.47.7).
var knownRegions = map[string]bool{
	"af-south-1": true, "ap-east-1": true, "ap-east-2": true, "ap-northeast-1": true, "ap-northeast-2": true,
	"ap-northeast-3": true, "ap-south-1": true, "ap-south-2": true, "ap-southeast-1": true, "ap-southeast-2": true,
	"ap-southeast-3": true, "ap-southeast-4": true, "ap-southeast-5": true, "ap-southeast-6": true, "ap-southeast-7": true,
	"ca-central-1": true, "ca-west-1": true, "eu-central-1": true, "eu-central-2": true, "eu-north-1": true,
	"eu-south-1": true, "eu-south-2": true, "eu-west-1": true, "eu-west-2": true, "eu-west-3": true,
	"il-central-1": true, "me-central-1": true, "me-south-1": true, "mx-central-1": true, "sa-east-1": true,
	"us-east-1": true, "us-east-2": true, "us-west-1": true, "us-west-2": true,
	"cn-north-1": true, "cn-northwest-1": true, "eusc-de-east-1": true,
	"us-iso-east-1": true, "us-iso-west-1": true, "us-isob-east-1": true, "us-isob-west-1": true,
	"eu-isoe-west-1": true, "us-isof-east-1": true, "us-isof-south-1": true,
	"us-gov-east-1": true, "us-gov-west-1": true,
}

// KnownRegion reports whether region is an AWS Region the SDK knows. A job
// for any other is refused unless its pool is named in AllowedPools, so a
// queue writer cannot make the worker create clients, limiters and metric
// series for made-up Regions.
func KnownRegion(region string) bool { return knownRegions[region] }
