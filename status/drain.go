// Package status is what resetq status shows of a campaign: the drain rate
// and ETA from samples of the queue's backlog, and the latest minute of
// Cognito's usage metrics per Region.
package status

import (
	"math"
	"time"
)

// Sample is one reading of a source queue's backlog.
type Sample struct {
	At      time.Time
	Backlog int64 // visible + in flight + delayed
}

// Drain states.
const (
	DrainUnknown  = "unknown"  // fewer than two samples
	DrainEmpty    = "empty"    // nothing left
	DrainDraining = "draining" // the backlog falls
	DrainStalled  = "stalled"  // the backlog does not move
	DrainGrowing  = "growing"  // the backlog rises (jobs arrive faster than they are done)
)

// Drain is the drain rate and ETA over a window of samples.
type Drain struct {
	State     string        `json:"state"`
	PerSecond float64       `json:"per_second"`    // jobs leaving the queue per second; negative when it grows
	ETA       time.Duration `json:"eta_ns"`        // time until the backlog is empty at PerSecond; 0 unless draining
	ETAText   string        `json:"eta,omitempty"` // ETA for people, e.g. "4m10s"
}

// DrainRate is the drain rate between the first and the last of samples
// (oldest first) and the ETA of the last sample's backlog at that rate.
func DrainRate(samples []Sample) Drain {
	if len(samples) == 0 {
		return Drain{State: DrainUnknown}
	}
	last := samples[len(samples)-1]
	if last.Backlog == 0 {
		return Drain{State: DrainEmpty, ETAText: "0s"}
	}
	if len(samples) < 2 {
		return Drain{State: DrainUnknown}
	}
	first := samples[0]
	elapsed := last.At.Sub(first.At).Seconds()
	if elapsed <= 0 {
		return Drain{State: DrainUnknown}
	}
	rate := float64(first.Backlog-last.Backlog) / elapsed
	switch {
	case rate > 0:
		secs := float64(last.Backlog) / rate
		eta := time.Duration(math.Min(secs, float64(math.MaxInt64/int64(time.Second))) * float64(time.Second))
		eta = eta.Round(time.Second)
		return Drain{State: DrainDraining, PerSecond: rate, ETA: eta, ETAText: eta.String()}
	case rate < 0:
		return Drain{State: DrainGrowing, PerSecond: rate}
	}
	return Drain{State: DrainStalled}
}
