package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/resetq/resetq/awserr"
)

// What a ledger error means to its caller, read with errors.Is. The
// error's chain also holds DynamoDB's answer as *awserr.Error (its code);
// a call the credentials may not make is *awserr.DeniedError, naming the
// IAM action.
var (
	// ErrNoTable: the table does not exist (or not in this Region).
	ErrNoTable = errors.New("ledger table not found")
	// ErrThrottled: DynamoDB throttled the call, or other writers kept
	// the same item busy, after every try. Try later; nothing was lost.
	ErrThrottled = errors.New("ledger throttled")
	// ErrUnavailable: DynamoDB could not be reached or answered with a
	// server error. Try later.
	ErrUnavailable = errors.New("ledger unavailable")
)

// kindError is err that also Is kind, with err's text.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// fail is the error of the call behind IAM action (dynamodb:UpdateItem)
// as callers read it: DynamoDB's answer as awserr, and what it means.
func (l *Ledger) fail(action string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("ledger table %s: %s: %w", l.cfg.Table, action, err)
	}
	e := awserr.From(err)
	wrapped := fmt.Errorf("ledger table %s: %s: %w", l.cfg.Table, action, e)
	code := awserr.Code(e)
	switch {
	case awserr.Denied(code):
		return &awserr.DeniedError{Action: action, Err: fmt.Errorf("ledger table %s: %w", l.cfg.Table, e)}
	case code == "ResourceNotFoundException":
		return &kindError{ErrNoTable, wrapped}
	case retryable(err):
		return &kindError{ErrThrottled, wrapped}
	case unreachable(err):
		return &kindError{ErrUnavailable, wrapped}
	}
	return wrapped
}

// throttleCode reports DynamoDB's answers that mean "too fast": the
// table's or account's throughput, or the control plane's rate.
func throttleCode(code string) bool {
	switch code {
	case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "LimitExceededException":
		return true
	}
	return false
}

// unreachable reports a call that got no answer (a network error) or a
// server error's.
func unreachable(err error) bool {
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() >= 500 {
		return true
	}
	switch awserr.Code(awserr.From(err)) {
	case "InternalServerError", "ServiceUnavailable":
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED)
}
