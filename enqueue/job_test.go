package enqueue

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resetq/resetq/job"
)

const pool = "eu-west-1_AbC123"

func TestBuild(t *testing.T) {
	b := Builder{Pool: pool, Metadata: map[string]string{"reason": "incident-7", "by": "ops"}}
	for _, c := range []struct {
		name string
		in   Input
		want string // body, or "ERR:" and part of the error
	}{
		{"username", Input{Username: "alice"}, `{"UserPoolId":"eu-west-1_AbC123","Username":"alice","ClientMetadata":{"by":"ops","reason":"incident-7"}}`},
		{"html characters are kept", Input{Username: "a&b<c>"}, `{"UserPoolId":"eu-west-1_AbC123","Username":"a&b<c>","ClientMetadata":{"by":"ops","reason":"incident-7"}}`},
		{"space", Input{Username: "al ice"}, "ERR:not allowed by the API"},
		{"too long", Input{Username: strings.Repeat("x", 129)}, "ERR:more than 128"},
		{"read error", Input{Err: errTest}, "ERR:test error"},
		{"jsonl keeps its metadata", Input{Job: []byte(`{"Username":"bob","UserPoolId":"eu-west-1_AbC123","ClientMetadata":{"reason":"own"}}`)},
			`{"UserPoolId":"eu-west-1_AbC123","Username":"bob","ClientMetadata":{"by":"ops","reason":"own"}}`},
		{"jsonl unknown field", Input{Job: []byte(`{"UserPoolId":"eu-west-1_AbC123","Username":"bob","Admin":true}`)}, `ERR:unknown field "Admin"`},
		{"jsonl other pool", Input{Job: []byte(`{"UserPoolId":"us-east-1_Other1","Username":"bob"}`)}, "ERR:is not --pool"},
		{"jsonl not json", Input{Job: []byte(`bob`)}, "ERR:not a JSON object"},
	} {
		body, built, err := b.Build(c.in)
		if rest, ok := strings.CutPrefix(c.want, "ERR:"); ok {
			if err == nil || !strings.Contains(err.Error(), rest) {
				t.Errorf("%s: got %q, %v; want an error with %q", c.name, body, err, rest)
			}
			continue
		}
		if err != nil || body != c.want {
			t.Errorf("%s: got %s, %v; want %s", c.name, body, err, c.want)
			continue
		}
		if again, err := job.ParseJob([]byte(body)); err != nil || !reflect.DeepEqual(again, built) {
			t.Errorf("%s: the worker reads %+v, %v; Build said %+v", c.name, again, err, built)
		}
	}
	// Without --pool, JSONL jobs name their own pools; without metadata
	// there is no ClientMetadata field.
	body, _, err := Builder{}.Build(Input{Job: []byte(`{"UserPoolId":"us-east-1_Other1","Username":"bob"}`)})
	if err != nil || body != `{"UserPoolId":"us-east-1_Other1","Username":"bob"}` {
		t.Errorf("no pool: %s, %v", body, err)
	}
}

type testError struct{}

func (testError) Error() string { return "test error" }

var errTest error = testError{}

func TestParseMetadata(t *testing.T) {
	m, err := ParseMetadata("reason=incident 7,ticket=OPS-1,expr=a=b,empty=")
	want := map[string]string{"reason": "incident 7", "ticket": "OPS-1", "expr": "a=b", "empty": ""}
	if err != nil || !reflect.DeepEqual(m, want) {
		t.Errorf("got %v, %v", m, err)
	}
	if m, err := ParseMetadata(""); err != nil || m != nil {
		t.Errorf("empty: %v, %v", m, err)
	}
	for _, bad := range []string{"novalue", "=v", "a=1,a=2", "a=1,", "a=1,,b=2"} {
		if _, err := ParseMetadata(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCampaign(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 1, 2, 0, time.FixedZone("x", 3600))
	a, b := NewCampaign(now), NewCampaign(now)
	if !regexp.MustCompile(`^c-20261123T110102Z-[0-9a-f]{6}$`).MatchString(a) || a == b {
		t.Errorf("campaigns %q %q", a, b)
	}
	if err := CheckCampaign(a); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "a\nb", strings.Repeat("x", 257), "\xff"} {
		if CheckCampaign(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
