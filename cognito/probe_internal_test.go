package cognito

import (
	"errors"
	"regexp"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/userpool"
)

func TestProbeUsernameForm(t *testing.T) {
	form := regexp.MustCompile(`^resetq-preflight-[0-9a-f]{16}$`)
	a, err := probeUsername()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := probeUsername()
	if !form.MatchString(a) || !form.MatchString(b) || a == b {
		t.Errorf("%q, %q: want two different names of the form %s", a, b, form)
	}
}

// TestProbeError: Cognito's codes become awserr's values; anything
// else keeps its code, and an error without one is passed on.
func TestProbeError(t *testing.T) {
	api := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }
	for _, tt := range []struct {
		err  error
		kind error // errors.Is target; nil: none of awserr's
		text string
	}{
		{api("UserNotFoundException"), awserr.ErrUserNotFound, "UserNotFoundException: m"},
		{api("ResourceNotFoundException"), awserr.ErrPoolNotFound, "ResourceNotFoundException: m"},
		{api("InvalidPasswordException"), awserr.ErrPasswordRefused, "InvalidPasswordException: m"},
		{api("TooManyRequestsException"), nil, "TooManyRequestsException: m"},
		{errors.New("dial tcp: refused"), nil, "dial tcp: refused"},
	} {
		got := probeError(userpool.OpGetUser, tt.err)
		if tt.kind != nil && !errors.Is(got, tt.kind) || got.Error() != tt.text {
			t.Errorf("%v: %v, want %q (%v)", tt.err, got, tt.text, tt.kind)
		}
	}
	var d *awserr.DeniedError
	if got := probeError(userpool.OpDisableUser, api("AccessDeniedException")); !errors.As(got, &d) || d.Action != "cognito-idp:AdminDisableUser" || d.Err.Error() != "AccessDeniedException: m" {
		t.Errorf("denied: %v", got)
	}
	if probeError(userpool.OpGetUser, nil) != nil {
		t.Error("nil is not nil")
	}
}
