package awserr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

func TestFrom(t *testing.T) {
	t.Parallel()
	api := &smithy.GenericAPIError{Code: "UserNotFoundException", Message: "User does not exist."}
	tests := []struct {
		name      string
		err       error
		code, msg string
		creds     bool
	}{
		{"an answer, wrapped by the adapter", fmt.Errorf("admin-get-user: %w", api), "UserNotFoundException", "User does not exist.", false},
		{"a signing failure", fmt.Errorf("op: %w", &v4.SigningError{Err: errors.New("boom")}), "", "", true},
		{"credentials that do not load", errors.New("operation error X: get identity: no EC2 IMDS role found"), "", "", true},
		{"a network error", errors.New("dial tcp: connection refused"), "", "", false},
		{"cancelled", context.Canceled, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := From(tt.err)
			if Code(got) != tt.code || errors.Is(got, ErrCredentials) != tt.creds || got.Error() != tt.err.Error() {
				t.Fatalf("From(%v) = %v: code %q, credentials %v; want %q, %v, the same text", tt.err, got, Code(got), errors.Is(got, ErrCredentials), tt.code, tt.creds)
			}
			if e, ok := As(got); ok && e.Message != tt.msg {
				t.Fatalf("message %q, want %q", e.Message, tt.msg)
			}
			if !errors.Is(got, tt.err) {
				t.Fatalf("From(%v) lost the SDK's error from its chain", tt.err)
			}
		})
	}
	if From(nil) != nil {
		t.Fatal("From(nil) != nil")
	}
}
