package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// pace is a limiter's adaptive rate: where the last cut left it, from which
// the rate climbs back with time alone. Rate is a pure function of a pace,
// the time and the usage state (Config.informed), so replicas sharing one
// pace and one usage state in Redis agree on the rate.
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
	type segment struct{ to, slope float64 }
	var buf [5]segment // rateAt runs on every call: no allocation
	segs := append(buf[:0], segment{c.Ceiling, c.Increase})
	if !p.Cut {
		segs = append(buf[:0], segment{c.Ceiling, c.StartIncrease})
	}
	if p.From > 0 {
		g := p.gain()
		slow := min(c.Increase, c.PlateauIncrease*p.From*g)
		lo := c.Plateau * p.From
		if p.Shared {
			lo = min(lo, p.To)
		}
		segs = append(buf[:0], segment{lo, c.Increase})
		if back := p.From - c.SharedMargin; p.Shared && back > p.To {
			// Back from the headroom over SharedRecovery: the gain is
			// the probes' speed past it, not this.
			segs = append(segs, segment{back, (back - p.To) / c.SharedRecovery.Seconds()})
		}
		segs = append(segs, segment{(2 - c.Plateau) * p.From, slow})
		if c.Cautious {
			// Owed no speed: past the quota found, fast only to half
			// the ceiling (a cut that found a burst's few calls climbs
			// back), then at the plateau's speed of the higher of the
			// two, whatever the gain.
			half := c.Ceiling / 2
			segs = append(segs, segment{half, c.Increase}, segment{c.Ceiling, min(c.Increase, c.PlateauIncrease*max(p.From, half))})
		} else if c.knee > 0 {
			// Fast only to where real users' bursts begin to fill the
			// quota (Config.informed), then the plateau's probe at
			// any gain, as the cautious climb.
			segs = append(segs, segment{c.knee, c.Increase}, segment{c.Ceiling, min(c.Increase, c.PlateauIncrease*max(p.From, c.knee))})
		} else {
			segs = append(segs, segment{c.Ceiling, c.Increase})
		}
	}
	for _, s := range segs {
		if r >= s.to || s.slope <= 0 {
			continue
		}
		need := (s.to - r) / s.slope
		if e <= need {
			return min(r+s.slope*e, c.Ceiling)
		}
		r, e = s.to, e-need
	}
	return min(r, c.Ceiling)
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
	g := p.gain()
	if shared && c.ThrottleTarget > 0 && p.Cut && calls > 0 {
		// Throttled more often than the target: probe more slowly.
		share := float64(throttled) / float64(calls)
		g = min(maxGain, max(minGain, g*math.Sqrt(min(4, max(0.25, c.ThrottleTarget/share)))))
	}
	return pace{CutAt: now, Cut: true, To: max(c.Floor, to), From: from, Shared: shared, Gain: g}, true
}

// String encodes p for Redis: microseconds, cut, to, from, shared, gain.
// Fields are only ever appended (stateFields): replicas of other versions
// read it.
func (p pace) String() string {
	return fmt.Sprintf("%d %d %g %g %d %g", p.CutAt.UnixMicro(), b2i(p.Cut), p.To, p.From, b2i(p.Shared), p.gain())
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parsePace decodes pace.String, and the paces of other versions
// (stateFields): before the gain (5 fields) it is 1.
func parsePace(s string) (pace, error) {
	f, err := stateFields(s, 6, "1")
	if err != nil {
		return pace{}, fmt.Errorf("pace %q: %w", s, err)
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

// stateFields splits a state a fleet keeps in Redis (the pace, the usage
// state) into the known fields this version reads: the fixed ones, then
// the later ones, whose defaults are given for a state written before
// them.
//
// A fleet's replicas run different versions for as long as a rolling
// update takes, and read and write the same keys, so these states only
// grow: a new field is appended and no field changes its meaning. A new
// field's default must mean what the versions before it did and be the
// cautious value: an older replica keeps writing states without it while
// both run. A reader takes the fields it knows and ignores the rest: a
// replica older than the writer follows the newer one's cap and pace
// (refusing them, it would pace with no cap, and write a state of its own
// over the fleet's), and a newer one reads an older one's state with its
// later fields' defaults.
func stateFields(s string, known int, defaults ...string) ([]string, error) {
	f := strings.Fields(s)
	if fixed := known - len(defaults); len(f) < fixed {
		return nil, fmt.Errorf("want %d fields or more", fixed)
	}
	if len(f) > known {
		return f[:known], nil
	}
	return append(f, defaults[len(defaults)-(known-len(f)):]...), nil
}
