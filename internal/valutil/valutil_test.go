package valutil

import (
	"testing"
	"time"
)

func TestValOrDefault(t *testing.T) {
	t.Parallel()
	if got := ValOrDefault(0, 16); got != 16 {
		t.Errorf("ValOrDefault(0, 16) = %d", got)
	}
	if got := ValOrDefault(-1, 16); got != -1 {
		t.Errorf("ValOrDefault(-1, 16) = %d, want -1 (only the zero value is replaced)", got)
	}
	if got := ValOrDefault("", "x"); got != "x" {
		t.Errorf("ValOrDefault(\"\", \"x\") = %q", got)
	}
}

func TestPositiveOrDefault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ val, want time.Duration }{{0, time.Second}, {-time.Second, time.Second}, {time.Millisecond, time.Millisecond}} {
		if got := PositiveOrDefault(tc.val, time.Second); got != tc.want {
			t.Errorf("PositiveOrDefault(%v, 1s) = %v, want %v", tc.val, got, tc.want)
		}
	}
}
