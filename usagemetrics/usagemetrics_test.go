package usagemetrics

import (
	"errors"
	"fmt"
	"testing"

	"github.com/resetq/resetq/awserr"
)

func TestState(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err           error
		state, action string
	}{
		{nil, StateOK, ""},
		{fmt.Errorf("cloudwatch:GetMetricData: %w", &awserr.DeniedError{Action: "cloudwatch:GetMetricData", Err: errors.New("no")}), StateDenied, "cloudwatch:GetMetricData"},
		{awserr.ErrNoData, StateNoData, ""},
		{fmt.Errorf("cloudwatch:GetMetricData: %w: gone", awserr.ErrNoData), StateNoData, ""},
		{errors.New("connection refused"), StateFailed, ""},
	} {
		if state, action := State(tt.err); state != tt.state || action != tt.action {
			t.Errorf("State(%v) = %q, %q; want %q, %q", tt.err, state, action, tt.state, tt.action)
		}
	}
}
