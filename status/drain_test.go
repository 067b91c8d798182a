package status

import (
	"testing"
	"time"
)

func TestDrainRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := func(sec int, backlog int64) Sample {
		return Sample{At: t0.Add(time.Duration(sec) * time.Second), Backlog: backlog}
	}
	tests := []struct {
		name    string
		samples []Sample
		state   string
		rate    float64
		eta     time.Duration
	}{
		{"no samples", nil, DrainUnknown, 0, 0},
		{"one sample", []Sample{s(0, 100)}, DrainUnknown, 0, 0},
		{"one sample empty", []Sample{s(0, 0)}, DrainEmpty, 0, 0},
		{"falling", []Sample{s(0, 1000), s(5, 900), s(10, 800)}, DrainDraining, 20, 40 * time.Second},
		{"falling uses first and last", []Sample{s(0, 100), s(5, 100), s(10, 50)}, DrainDraining, 5, 10 * time.Second},
		{"flat", []Sample{s(0, 100), s(5, 100)}, DrainStalled, 0, 0},
		{"rising", []Sample{s(0, 100), s(10, 150)}, DrainGrowing, -5, 0},
		{"reached zero", []Sample{s(0, 100), s(10, 0)}, DrainEmpty, 0, 0},
		{"zero throughout", []Sample{s(0, 0), s(5, 0)}, DrainEmpty, 0, 0},
		{"same instant", []Sample{s(5, 100), s(5, 90)}, DrainUnknown, 0, 0},
		{"slow drain long eta", []Sample{s(0, 1000000), s(10, 999999)}, DrainDraining, 0.1, 9999990 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DrainRate(tt.samples)
			if d.State != tt.state || d.PerSecond != tt.rate || d.ETA != tt.eta {
				t.Fatalf("DrainRate = %+v, want state %s rate %v eta %v", d, tt.state, tt.rate, tt.eta)
			}
			if d.State == DrainDraining && d.ETAText != tt.eta.String() {
				t.Errorf("ETAText %q", d.ETAText)
			}
		})
	}
}
