package job

import "testing"

func TestScopeKey(t *testing.T) {
	for _, s := range []Scope{
		{Region: "us-east-1"},
		{Account: "222222222222", Region: "us-east-1"},
		{Account: "333333333333", Region: "eu-west-1"},
	} {
		k := s.Key()
		if got := ParseScope(k); got != s {
			t.Errorf("ParseScope(%q) = %+v, want %+v", k, got, s)
		}
	}
	if got := (Scope{Account: "222222222222", Region: "us-east-1"}).Key(); got != "222222222222/us-east-1" {
		t.Errorf("Key = %q", got)
	}
	if got := (Scope{Region: "us-east-1"}).Key(); got != "us-east-1" {
		t.Errorf("Key without account = %q", got)
	}
}
