package accounts

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRoles(t *testing.T) {
	const ok = `# pools in other accounts
us-east-1_AAA arn:aws:iam::222222222222:role/resetq-target

eu-west-1_BBB   arn:aws:iam::333333333333:role/path/resetq   external-id=incident-42  # trailing comment
us-gov-west-1_CCC arn:aws-us-gov:iam::444444444444:role/r
`
	roles, err := ParseRoles(strings.NewReader(ok), "roles.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := Roles{
		"us-east-1_AAA":     {ARN: "arn:aws:iam::222222222222:role/resetq-target", Account: "222222222222"},
		"eu-west-1_BBB":     {ARN: "arn:aws:iam::333333333333:role/path/resetq", ExternalID: "incident-42", Account: "333333333333"},
		"us-gov-west-1_CCC": {ARN: "arn:aws-us-gov:iam::444444444444:role/r", Account: "444444444444"},
	}
	if len(roles) != len(want) {
		t.Fatalf("got %d roles, want %d: %+v", len(roles), len(want), roles)
	}
	for pool, r := range want {
		if roles[pool] != r {
			t.Errorf("%s: got %+v, want %+v", pool, roles[pool], r)
		}
	}

	for _, tc := range []struct {
		name, text string
		line       int
		msg        string
	}{
		{"one field", "\nus-east-1_AAA\n", 2, "got 1 fields"},
		{"four fields", "us-east-1_AAA arn:aws:iam::222222222222:role/x external-id=ab more", 1, "got 4 fields"},
		{"bad pool", "# c\n\nnot-a-pool arn:aws:iam::222222222222:role/x", 3, "not a pool ID"},
		{"user ARN", "us-east-1_AAA arn:aws:iam::222222222222:user/x", 1, "not an IAM role ARN"},
		{"short account", "us-east-1_AAA arn:aws:iam::2222:role/x", 1, "not an IAM role ARN"},
		{"bad third", "us-east-1_AAA arn:aws:iam::222222222222:role/x extid=ab", 1, "want external-id=ID"},
		{"bad external id", "us-east-1_AAA arn:aws:iam::222222222222:role/x external-id=a", 1, "external ID"},
		{"duplicate", "us-east-1_AAA arn:aws:iam::222222222222:role/x\nus-east-1_AAA arn:aws:iam::333333333333:role/x", 2, "already on line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRoles(strings.NewReader(tc.text), "f")
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *LineError", err)
			}
			if le.Line != tc.line || !strings.Contains(le.Msg, tc.msg) {
				t.Errorf("got line %d %q, want line %d containing %q", le.Line, le.Msg, tc.line, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}

	if roles, err := ParseRoles(strings.NewReader("# nothing\n\n"), "f"); err != nil || len(roles) != 0 {
		t.Errorf("comments only: %v, %v", roles, err)
	}
}

func TestSessionName(t *testing.T) {
	for _, tc := range []struct{ campaign, want string }{
		{"", "resetq"},
		{"incident-2026-12", "resetq-incident-2026-12"},
		{"a b/c:dé", "resetq-a-b-c-d-"},
		{strings.Repeat("x", 100), "resetq-" + strings.Repeat("x", 57)},
	} {
		if got := SessionName(tc.campaign); got != tc.want {
			t.Errorf("SessionName(%q) = %q, want %q", tc.campaign, got, tc.want)
		}
	}
}
