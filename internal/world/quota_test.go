package world

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// at is t0 plus ms milliseconds; t0 is on a whole second.
var t0 = time.Unix(1_800_000_000, 0)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

type call struct {
	ms   float64
	want bool
}

func TestQuotaModels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		model     string
		perSecond float64
		burst     int
		calls     []call
	}{
		{"sliding: full, then the oldest leaves exactly a second later", Sliding, 3, 0, []call{
			{0, true}, {100, true}, {200, true}, {300, false}, {999.999, false},
			{1000, true}, // 0 is at t-1s: out of (t-1s, t]
			{1050, false}, {1100, true}, {1199, false}, {1200, true}, {1200, false},
		}},
		{"sliding: throttled calls do not count", Sliding, 2, 0, []call{
			{0, true}, {500, true}, {600, false}, {700, false}, {1000, true}, {1499, false}, {1500, true},
		}},
		{"sliding: a fraction of a call is none", Sliding, 2.9, 0, []call{{0, true}, {1, true}, {2, false}}},
		{"second: the calendar second, whatever came just before", Second, 3, 0, []call{
			{700, true}, {800, true}, {999.999, true}, {999.9999, false},
			{1000, true}, {1000, true}, {1000, true}, {1001, false}, {1999, false},
			{2999, true}, {3000, true},
		}},
		{"bucket: the burst at once, then the refill", Bucket, 2, 3, []call{
			{0, true}, {0, true}, {0, true}, {0, false},
			{499, false}, {500, true}, {500, false}, {1000, true},
			{10_000, true}, {10_000, true}, {10_000, true}, {10_000, false}, // full again, no more
		}},
		{"bucket: burst 0 is the rate", Bucket, 4, 0, []call{
			{0, true}, {0, true}, {0, true}, {0, true}, {0, false}, {250, true}, {250, false},
		}},
		{"bucket: evenly spaced at the rate never throttles", Bucket, 30, 1, func() []call {
			var cs []call
			for i := range 300 {
				cs = append(cs, call{float64(i) * 1000 / 30, true})
			}
			return cs
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := NewQuota(tt.model, tt.perSecond, tt.burst)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range tt.calls {
				if got := q.Admit(at(c.ms)); got != c.want {
					t.Errorf("call %d at %v ms: admitted %v, want %v", i, c.ms, got, c.want)
				}
			}
		})
	}
}

// TestQuotaAtTheEdges counts what each model admits from 100 calls a
// second evenly spaced over 10 s: the quota, except the bucket's burst.
func TestQuotaAtTheEdges(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		model string
		burst int
		want  int
	}{{Sliding, 0, 300}, {Second, 0, 300}, {Bucket, 30, 30 + 299}, {Bucket, 5, 5 + 299}} {
		q, err := NewQuota(tt.model, 30, tt.burst)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for i := range 1000 {
			if q.Admit(at(float64(i) * 10)) {
				got++
			}
		}
		// The bucket refills 30/s for 9.99 s: 299.7 more tokens.
		if got != tt.want {
			t.Errorf("%s burst %d: %d of 1,000 calls admitted, want %d", tt.model, tt.burst, got, tt.want)
		}
	}
}

func TestQuotaConcurrent(t *testing.T) {
	t.Parallel()
	for _, m := range Models() {
		q, err := NewQuota(m, 30, 0)
		if err != nil {
			t.Fatal(err)
		}
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if q.Admit(at(0)) {
					admitted.Add(1)
				}
			}()
		}
		wg.Wait()
		if admitted.Load() != 30 {
			t.Errorf("%s: %d of 100 calls at once admitted, want 30", m, admitted.Load())
		}
	}
}

func TestNewQuotaErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		model     string
		perSecond float64
		burst     int
	}{{"leaky", 30, 0}, {Sliding, 0.5, 0}, {Second, 0, 0}, {Bucket, 0, 5}, {Bucket, 30, -1}, {Bucket, 0.5, 0}} {
		if _, err := NewQuota(tt.model, tt.perSecond, tt.burst); err == nil {
			t.Errorf("NewQuota(%q, %v, %d): no error", tt.model, tt.perSecond, tt.burst)
		}
	}
	if _, err := NewQuota(Bucket, 0.5, 1); err != nil {
		t.Errorf("a bucket of 0.5/s with a burst of 1: %v", err)
	}
}
