// Package jobtest holds inputs for the tests and fuzzers of packages that decode jobs.
package jobtest

import (
	"strings"

	"github.com/resetq/resetq/job"
)

// PoisonBodies are message bodies that must each be dead-lettered as
// invalid_job, unchanged, without a crash or a stall: the seeds of both
// fuzz targets, so every `go test` run tries them all.
func PoisonBodies() []string {
	valid := `{"UserPoolId":"us-east-1_Pool1","Username":"a"}`
	return []string{
		``, ` `, `{}`, `null`, `[]`, `"x"`, `42`, `true`, `{`, `}`, `{"UserPoolId":"us-east-1_Pool1"}`,
		valid + `{}`, valid + ` x`, "\ufeff" + valid, // trailing data, a byte-order mark
		`[` + valid + `]`, `{"job":` + valid + `}`,
		`{"UserPoolId":"us-east-1_Pool1","Username":"a","Username":"b"}`, // a field twice
		`{"userpoolid":"us-east-1_Pool1","username":"a"}`,                // names in another case
		`{"UserPoolId":"us-east-1_Pool1","Username":"a","Admin":true}`,   // an unknown field
		`{"UserPoolId":"us-east-1_Pool1","Username":42}`, `{"UserPoolId":["us-east-1_Pool1"],"Username":"a"}`,
		`{"UserPoolId":"us-east-1_Pool1","Username":null}`, `{"UserPoolId":"us-east-1_Pool1","Username":""}`,
		`{"UserPoolId":"pool","Username":"a"}`, `{"UserPoolId":"us-east-1-Pool1","Username":"a"}`,
		`{"UserPoolId":"us-east-1_Pool1","Username":"` + strings.Repeat("a", 129) + `"}`,
		`{"UserPoolId":"us-east-1_Pool1","Username":"a\u0000b"}`, "{\"UserPoolId\":\"us-east-1_Pool1\",\"Username\":\"a\x01b\"}",
		"{\"UserPoolId\":\"us-east-1_Pool1\",\"Username\":\"\xff\"}", "\xff\xfe\xfd", // invalid UTF-8
		`{"UserPoolId":"us-east-1_Pool1","Username":"\ud800"}`, // a lone surrogate
		`{"UserPoolId":"us-east-1_Pool1","Username":"a","ClientMetadata":{"k":{"nested":1}}}`,
		`{"UserPoolId":"us-east-1_Pool1","Username":"a","ClientMetadata":[]}`,
		`{"UserPoolId":"us-east-1_Pool1","Username":"a","ClientMetadata":{"k":"v","k":"w"}}`,
		`{"UserPoolId":"us-east-1_Pool1","Username":"a"} // comment`, `{"UserPoolId":"us-east-1_Pool1",}`,
		`{"UserPoolId":1e999,"Username":"a"}`, strings.Repeat("[", 100000), strings.Repeat(`{"a":`, 10000),
		`{"UserPoolId":"us-east-1_Pool1","Username":"` + strings.Repeat(`\\`, 20000) + `"}`,
		`{"UserPoolId":"us-east-1_Pool1","Username":"a","ClientMetadata":{"k":"` + strings.Repeat("v", job.MaxBodyBytes) + `"}}`, // oversized
	}
}
