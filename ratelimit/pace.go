package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// pace is a limiter's adaptive rate: where the last cut left it, from which
// the rate climbs back with time alone. Rate is a pure function of a pace
// and the time, so replicas sharing one pace in Redis agree on the rate.
type pace struct {
	CutAt  time.Time // the last cut, or the start
	Cut    bool      // CutAt was a cut, not the start
	To     float64   // the rate the cut set
	From   float64   // the quota found at the cut (0: none, climb fast)
	Shared bool      // the cut left real users headroom
	Gain   float64   // speed of the probes near From (0: 1)
}

// start is the pace before any throttle.
func (c Config) start(now time.Time) pace { return pace{CutAt: now, To: c.Start} }

// rateAt is p's rate at now.
func (c Config) rateAt(p pace, now time.Time) float64 {
	e := now.Sub(p.CutAt).Seconds()
	r := max(p.To, c.Floor)
	if e <= 0 {
		return min(r, c.Ceiling)
	}
	// A segment climbs to its end at slope a second; a probe's segment
	// (gained) at the plateau's speed times the gain at the time.
	type segment struct {
		to, slope float64
		gained    bool
	}
	var buf [5]segment // rateAt runs on every call: no allocation
	segs := append(buf[:0], segment{c.Ceiling, c.Increase, false})
	if !p.Cut {
		segs = append(buf[:0], segment{c.Ceiling, c.StartIncrease, false})
	}
	if p.From > 0 {
		lo := c.Plateau * p.From
		if p.Shared {
			lo = min(lo, p.To)
		}
		segs = append(buf[:0], segment{lo, c.Increase, false})
		if back := p.From - c.SharedMargin; p.Shared && back > p.To {
			// Back from the headroom over SharedRecovery: the gain is
			// the probes' speed past it, not this.
			segs = append(segs, segment{back, (back - p.To) / c.SharedRecovery.Seconds(), false})
		}
		segs = append(segs, segment{(2 - c.Plateau) * p.From, 0, true})
		if c.Cautious {
			// Owed no speed: past the quota found, fast only to half
			// the ceiling (a cut that found a burst's few calls climbs
			// back), then at the plateau's speed of the higher of the
			// two, whatever the gain.
			half := c.Ceiling / 2
			segs = append(segs, segment{half, c.Increase, false}, segment{c.Ceiling, min(c.Increase, c.PlateauIncrease*max(p.From, half)), false})
		} else {
			segs = append(segs, segment{c.Ceiling, c.Increase, false})
		}
	}
	t := 0.0 // seconds since the cut at r
	for _, s := range segs {
		for r < s.to && e > 0 {
			slope, d, next := s.slope, e, math.Inf(1)
			if s.gained {
				var g float64
				g, next = c.gainAt(p, t)
				slope = min(c.Increase, c.PlateauIncrease*p.From*g)
				d = min(d, next-t)
			}
			if slope <= 0 {
				break
			}
			if need := (s.to - r) / slope; d >= need {
				r, e, t = s.to, e-need, t+need
				continue
			}
			r, e, t = r+slope*d, e-d, min(t+d, next) // next: the gain's next step
		}
	}
	return min(r, c.Ceiling)
}

// gainDoublings is how many calls of the limiter's own since a cut, each
// untroubled by a throttle, double the probes' gain: a throttle after
// that many, ThrottleTarget/4 of them throttled, would double it at its
// cut (Config.cut). gainQuiet is the longest a doubling waits: at a few
// calls a second, 4,000 calls take most of an hour, and one throttle of
// the limiter's own in gainQuiet costs real users a few calls at most.
const (
	gainDoublings = 4
	gainQuiet     = 5 * time.Minute
)

// gainAt is p's gain for the probes t seconds after its cut, and until when
// (seconds after the cut) it holds. Under a ThrottleTarget (no minute
// judged: Config.judgedBy; after one, spare minutes raise it) a stretch
// without a throttle raises it as a throttle at its end would have: it
// doubles for every gainDoublings/ThrottleTarget calls at p.To, the least
// rate since the cut (4,000 calls at a target of 0.1%: 400 s at 10/s), or
// every gainQuiet if that comes first, counted from the cut or from the
// last judged minute (Config.quietFrom), whichever is later: while minutes
// were judged spare ones raised it, and a quiet counted from a cut long
// before would send the rate at once to the ceiling when the metrics fall
// silent. The pace's gain is set at cuts alone, so without this resetq's
// own throttles in a few bursts took the gain to 1/64, and with nobody
// there to throttle it again the probe climbed from 0.9 to 1.1 times the
// quota found for over an hour (found 10/s: 15/s after 1 h 31 min).
func (c Config) gainAt(p pace, t float64) (g, until float64) {
	g = p.gain()
	if c.ThrottleTarget <= 0 || !p.Cut || g >= maxGain {
		return g, math.Inf(1)
	}
	every := min(gainDoublings/(c.ThrottleTarget*max(p.To, c.Floor)), gainQuiet.Seconds())
	if !(every > 0) {
		return g, math.Inf(1)
	}
	from := 0.0 // the quiet counts from the cut, or from the last judged minute
	if !c.quietFrom.IsZero() {
		from = max(0, c.quietFrom.Sub(p.CutAt).Seconds())
	}
	if t < from {
		return g, from
	}
	k := math.Floor((t - from) / every)
	if from+(k+1)*every <= t {
		k++ // t on a boundary, as rateAt steps to it
	}
	if g*math.Exp2(k) >= maxGain {
		return maxGain, math.Inf(1)
	}
	return g * math.Exp2(k), from + (k+1)*every
}

func (p pace) gain() float64 {
	if p.Gain <= 0 {
		return 1
	}
	return p.Gain
}

// Bounds of pace.Gain.
const minGain, maxGain = 1.0 / 64, 1

// cut is p after a throttle at now, when calls ran at ran a second (the
// pace's rate under the cap and the room) and found got through in the
// last second, calls had run for busy without a gap, and of the calls
// answered since the last cut, throttled were throttled. It is p itself
// within CutInterval of the last cut.
func (c Config) cut(p pace, now time.Time, ran, found float64, busy time.Duration, calls, throttled int) (pace, bool) {
	if d := now.Sub(p.CutAt); p.Cut && d >= 0 && d < c.CutInterval {
		return p, false
	}
	limit := c.rateAt(p, now)
	// Below the quota found last time the headroom is already left: a
	// throttle there takes the plain cut.
	returning := p.Shared && limit < p.From
	// More than the rate got through: the calls bunched on their way
	// (busy CPUs, a network, a fleet's late reports), which finds no
	// quota over the rate. Taken for one, a plain cut's fast climb to
	// Plateau times it went straight back over where it was throttled.
	m := min(limit, ran, found)
	to := c.Decrease * m
	shared := found < c.SharedBelow
	if shared && !returning {
		to = min(to, max(m-c.Headroom, 0.8*m))
	}
	from := m
	if busy < time.Second {
		from = 0 // found is only part of the quota: climb fast
	}
	g, _ := c.gainAt(p, now.Sub(p.CutAt).Seconds())
	if shared && c.ThrottleTarget > 0 && p.Cut && calls > 0 {
		// Throttled more often than the target: probe more slowly.
		// A gain the quiet since the cut has raised (gainAt) rises no
		// more for it.
		share := float64(throttled) / float64(calls)
		f := math.Sqrt(min(4, max(0.25, c.ThrottleTarget/share)))
		if g > p.gain() {
			f = min(f, 1)
		}
		g = min(maxGain, max(minGain, g*f))
	}
	return pace{CutAt: now, Cut: true, To: max(c.Floor, to), From: from, Shared: shared, Gain: g}, true
}

// String encodes p for Redis: microseconds, cut, to, from, shared, gain.
func (p pace) String() string {
	return fmt.Sprintf("%d %d %g %g %d %g", p.CutAt.UnixMicro(), b2i(p.Cut), p.To, p.From, b2i(p.Shared), p.gain())
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parsePace decodes pace.String.
func parsePace(s string) (pace, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return pace{}, fmt.Errorf("pace %q: want 6 fields", s)
	}
	g, err := strconv.ParseFloat(f[5], 64)
	if err != nil || !(g >= minGain && g <= maxGain) {
		return pace{}, fmt.Errorf("pace %q: bad gain", s)
	}
	at, err1 := strconv.ParseInt(f[0], 10, 64)
	to, err2 := strconv.ParseFloat(f[2], 64)
	from, err3 := strconv.ParseFloat(f[3], 64)
	flag := func(s string) bool { return s == "0" || s == "1" }
	if err1 != nil || err2 != nil || err3 != nil || !(to >= 0) || !(from >= 0) || !flag(f[1]) || !flag(f[4]) {
		return pace{}, fmt.Errorf("pace %q: bad field", s)
	}
	return pace{CutAt: time.UnixMicro(at), Cut: f[1] == "1", To: to, From: from, Shared: f[4] == "1", Gain: g}, nil
}
