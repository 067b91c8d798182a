package retry

import (
	"testing"
	"time"
)

func TestCurve(t *testing.T) {
	t.Parallel()
	b := Curve{Base: time.Second, Max: 30 * time.Second}
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0, 500 * time.Millisecond},
		{1, 0.999999, 999999500 * time.Nanosecond},
		{2, 0, time.Second},
		{3, 0.5, 3 * time.Second},
		{5, 0, 8 * time.Second},
		{6, 0, 15 * time.Second}, // 32s capped to 30s
		{0, 0, 500 * time.Millisecond},
		{-4, 0, 500 * time.Millisecond},
		{1 << 30, 0, 15 * time.Second}, // no overflow
		{3, 7, b.Delay(3, 0.999999)},   // r clamped below 1
		{3, -1, 2 * time.Second},       // r clamped at 0
	}
	for _, tt := range tests {
		if got := b.Delay(tt.attempt, tt.r); got != tt.want {
			t.Errorf("Delay(%d, %v) = %v, want %v", tt.attempt, tt.r, got, tt.want)
		}
	}
	// Every draw stays within [d/2, d].
	for attempt := 1; attempt < 12; attempt++ {
		for _, r := range []float64{0, 0.25, 0.5, 0.75, 0.99} {
			d := b.Delay(attempt, r)
			full := min(b.Max, b.Base<<(attempt-1))
			if d < full/2 || d > full {
				t.Errorf("Delay(%d, %v) = %v outside [%v, %v]", attempt, r, d, full/2, full)
			}
		}
	}
}
