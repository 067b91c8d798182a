package job_test

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/job/jobtest"
)

func TestParseJob(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name    string
		body    string
		want    job.Job
		wantErr string // substring; "" = valid
	}{
		{name: "minimal", body: `{"UserPoolId":"us-east-1_AbC123","Username":"alice"}`,
			want: job.Job{UserPoolID: "us-east-1_AbC123", Username: "alice"}},
		{name: "with metadata and spaces", body: " {\n \"Username\" : \"bob@example.com\", \"UserPoolId\":\"eu-west-1_x9\", \"ClientMetadata\":{\"k\":\"v\",\"e\":\"\"}}\n",
			want: job.Job{UserPoolID: "eu-west-1_x9", Username: "bob@example.com", ClientMetadata: map[string]string{"k": "v", "e": ""}}},
		{name: "gov region", body: `{"UserPoolId":"us-gov-west-1_Z","Username":"u"}`, want: job.Job{UserPoolID: "us-gov-west-1_Z", Username: "u"}},
		{name: "unicode username", body: `{"UserPoolId":"ap-southeast-2_Q","Username":"Zoë_Ångström+1"}`,
			want: job.Job{UserPoolID: "ap-southeast-2_Q", Username: "Zoë_Ångström+1"}},
		{name: "sub as username", body: `{"UserPoolId":"us-east-1_A","Username":"0f8fad5b-d9cb-469f-a165-70867728950e"}`,
			want: job.Job{UserPoolID: "us-east-1_A", Username: "0f8fad5b-d9cb-469f-a165-70867728950e"}},
		{name: "empty metadata", body: `{"UserPoolId":"us-east-1_A","Username":"u","ClientMetadata":{}}`,
			want: job.Job{UserPoolID: "us-east-1_A", Username: "u", ClientMetadata: map[string]string{}}},
		{name: "128 chars", body: `{"UserPoolId":"us-east-1_A","Username":"` + long(128) + `"}`, want: job.Job{UserPoolID: "us-east-1_A", Username: long(128)}},

		{name: "empty body", body: ``, wantErr: "not a JSON object"},
		{name: "not json", body: `reset alice please`, wantErr: "not a JSON object"},
		{name: "array", body: `[{"UserPoolId":"us-east-1_A","Username":"u"}]`, wantErr: "not a JSON object"},
		{name: "string", body: `"us-east-1_A"`, wantErr: "not a JSON object"},
		{name: "null", body: `null`, wantErr: "not a JSON object"},
		{name: "truncated", body: `{"UserPoolId":"us-east-1_A","Username":"u"`, wantErr: "not a JSON object"},
		{name: "two objects", body: `{"UserPoolId":"us-east-1_A","Username":"u"}{}`, wantErr: "data after"},
		{name: "trailing garbage", body: `{"UserPoolId":"us-east-1_A","Username":"u"} x`, wantErr: "data after"},
		{name: "missing pool", body: `{"Username":"u"}`, wantErr: "UserPoolId is required"},
		{name: "missing username", body: `{"UserPoolId":"us-east-1_A"}`, wantErr: "Username is required"},
		{name: "empty username", body: `{"UserPoolId":"us-east-1_A","Username":""}`, wantErr: "Username is required"},
		{name: "duplicate field", body: `{"UserPoolId":"us-east-1_A","Username":"u","Username":"v"}`, wantErr: "more than once"},
		{name: "duplicate metadata key", body: `{"UserPoolId":"us-east-1_A","Username":"u","ClientMetadata":{"a":"1","a":"2"}}`, wantErr: "more than once"},
		{name: "unknown field", body: `{"UserPoolId":"us-east-1_A","Username":"u","Force":true}`, wantErr: `unknown field "Force"`},
		{name: "wrong case field", body: `{"userPoolId":"us-east-1_A","Username":"u"}`, wantErr: "unknown field"},
		{name: "number username", body: `{"UserPoolId":"us-east-1_A","Username":42}`, wantErr: "must be a string, not a number"},
		{name: "null username", body: `{"UserPoolId":"us-east-1_A","Username":null}`, wantErr: "not null"},
		{name: "object pool", body: `{"UserPoolId":{},"Username":"u"}`, wantErr: "must be a string"},
		{name: "metadata not object", body: `{"UserPoolId":"us-east-1_A","Username":"u","ClientMetadata":"k=v"}`, wantErr: "ClientMetadata is not a JSON object"},
		{name: "metadata null", body: `{"UserPoolId":"us-east-1_A","Username":"u","ClientMetadata":null}`, wantErr: "ClientMetadata is not a JSON object"},
		{name: "metadata number value", body: `{"UserPoolId":"us-east-1_A","Username":"u","ClientMetadata":{"k":1}}`, wantErr: "must be a string"},
		{name: "username with space", body: `{"UserPoolId":"us-east-1_A","Username":"a b"}`, wantErr: "not allowed"},
		{name: "username with control", body: `{"UserPoolId":"us-east-1_A","Username":"a\u0007b"}`, wantErr: "not allowed"},
		{name: "username with newline", body: `{"UserPoolId":"us-east-1_A","Username":"a\nb"}`, wantErr: "not allowed"},
		{name: "username 129", body: `{"UserPoolId":"us-east-1_A","Username":"` + long(129) + `"}`, wantErr: "more than 128"},
		{name: "pool without region", body: `{"UserPoolId":"AbC123","Username":"u"}`, wantErr: "not a pool ID"},
		{name: "pool bad region", body: `{"UserPoolId":"mars_AbC","Username":"u"}`, wantErr: "not a pool ID"},
		{name: "pool bad chars", body: `{"UserPoolId":"us-east-1_Ab-C","Username":"u"}`, wantErr: "not a pool ID"},
		{name: "pool too long", body: `{"UserPoolId":"us-east-1_` + long(46) + `","Username":"u"}`, wantErr: "more than 55"},
		{name: "invalid utf8", body: "{\"UserPoolId\":\"us-east-1_A\",\"Username\":\"\xff\"}", wantErr: "not valid UTF-8"},
		{name: "oversized", body: `{"UserPoolId":"us-east-1_A","Username":"u","ClientMetadata":{"k":"` + long(job.MaxBodyBytes) + `"}}`, wantErr: "more than the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := job.ParseJob([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseJob error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseJob: %v", err)
			}
			if got.UserPoolID != tt.want.UserPoolID || got.Username != tt.want.Username || !sameMap(got.ClientMetadata, tt.want.ClientMetadata) {
				t.Fatalf("ParseJob = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func sameMap(a, b map[string]string) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestValidatePoolID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]string{
		"us-east-1_AbC123": "", "us-gov-west-1_Z": "", "": "required", "AbC123": "not a pool ID",
		"mars_AbC": "not a pool ID", "us-east-1_Ab-C": "not a pool ID", "us-east-1_" + strings.Repeat("a", 46): "more than 55",
	} {
		err := job.ValidatePoolID(id)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("ValidatePoolID(%q) = %v, want %q", id, err, want)
		}
		if jerr := (job.Job{UserPoolID: id, Username: "x"}).Validate(); (jerr == nil) != (err == nil) {
			t.Errorf("ValidatePoolID(%q) = %v, but Validate of a job with it = %v", id, err, jerr)
		}
	}
}

func TestJobRegion(t *testing.T) {
	t.Parallel()
	for pool, want := range map[string]string{"eu-west-1_AbC": "eu-west-1", "us-gov-east-1_x": "us-gov-east-1", "nounderscore": ""} {
		if got := (job.Job{UserPoolID: pool}).Region(); got != want {
			t.Errorf("Region of %q = %q, want %q", pool, got, want)
		}
	}
}

// FuzzParseJob checks that any body either parses into a job that passes
// Validate and survives a round trip, or is rejected with an error; never
// a panic.
func FuzzParseJob(f *testing.F) {
	for _, s := range []string{
		`{"UserPoolId":"us-east-1_AbC123","Username":"alice","ClientMetadata":{"k":"v"}}`,
		`{"UserPoolId":"us-east-1_A","Username":"u","Username":"v"}`,
		`{"UserPoolId":"us-east-1_A","Username":"u"} {}`,
		`[]`, `null`, `{"ClientMetadata":{"a":{}}}`, "{\"Username\":\"\xff\"}", `{"UserPoolId":"us-east-1_A","Username":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range jobtest.PoisonBodies() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		j, err := job.ParseJob(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		if !utf8.Valid(body) || len(body) > job.MaxBodyBytes {
			t.Fatalf("accepted a body that is not valid UTF-8 or too long: %q", body)
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("parsed job does not validate: %v", err)
		}
		if j.Region() == "" {
			t.Fatalf("parsed job has no Region: %+v", j)
		}
	})
}

// TestPoisonBodies: every poison body of the fuzz seeds is rejected, so the
// fuzz targets really start from bad input.
func TestPoisonBodies(t *testing.T) {
	t.Parallel()
	for _, body := range jobtest.PoisonBodies() {
		if _, err := job.ParseJob([]byte(body)); err == nil {
			t.Errorf("ParseJob accepted %.80q", body)
		}
	}
	t.Logf("%d poison bodies rejected", len(jobtest.PoisonBodies()))
}

func TestEncodeReadsBackAsTheJob(t *testing.T) {
	for _, j := range []job.Job{
		{UserPoolID: "us-east-1_Ab", Username: "alice"},
		{UserPoolID: "eu-west-1_Ab", Username: `q"<&>\zoë`, ClientMetadata: map[string]string{"campaign": "x<y"}},
		{UserPoolID: "us-east-1_Ab", Username: strings.Repeat("é", 128)},
	} {
		body, err := j.Encode()
		if err != nil {
			t.Fatalf("%+v: %v", j, err)
		}
		if strings.Contains(body, `\u003c`) {
			t.Errorf("%s: HTML-escaped", body)
		}
		got, err := job.ParseJob([]byte(body))
		if err != nil || !reflect.DeepEqual(got, j) {
			t.Errorf("%s read back as %+v, %v", body, got, err)
		}
	}
	for _, bad := range []job.Job{{UserPoolID: "pool", Username: "a"}, {UserPoolID: "us-east-1_Ab"}, {UserPoolID: "us-east-1_Ab", Username: strings.Repeat("a", 129)}} {
		if body, err := bad.Encode(); err == nil {
			t.Errorf("%+v encoded as %s", bad, body)
		}
	}
}
