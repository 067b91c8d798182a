package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/internal/localserver"
)

// gauge is one reading of a resetq process's pacing gauges for the
// reset's category, from its /metrics: what it paced at, the cap the
// usage minutes put on it and the room real users leave it, so that a
// long row's timeline shows why the rate was where it was.
type gauge struct {
	at      time.Time
	T       float64 `json:"t"` // seconds from the campaign's start
	Process int     `json:"process"`
	Limit   float64 `json:"limit"` // resetq_ratelimit_limit
	Cap     float64 `json:"cap"`   // resetq_ratelimit_usage_cap (0: none)
	Room    float64 `json:"room"`  // resetq_category_room of UserAccountRecovery (-1: not known)
}

// parseGauges reads the reset's pacing gauges from a /metrics page (the
// Prometheus text format); ok is false without resetq_ratelimit_limit.
func parseGauges(page string) (g gauge, ok bool) {
	g.Room = -1
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		return g, false
	}
	// first is the family's first gauge whose labels hold want's (name, value).
	first := func(family string, want ...string) (float64, bool) {
		for _, m := range families[family].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if len(want) > 0 && labels[want[0]] != want[1] {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Untyped != nil: // a page without # TYPE lines
				return m.GetUntyped().GetValue(), true
			}
		}
		return 0, false
	}
	g.Limit, ok = first("resetq_ratelimit_limit")
	g.Cap, _ = first("resetq_ratelimit_usage_cap")
	if room, known := first("resetq_category_room", "category", "UserAccountRecovery"); known {
		g.Room = room
	}
	return g, ok
}

// startGauges reads a process's gauges every second (watchGauges) until
// the function it returns is called, which returns them.
func startGauges(ctx context.Context, log string) func() []gauge {
	ctx, stop := context.WithCancel(ctx)
	out := make(chan []gauge, 1)
	go func() { out <- watchGauges(ctx, log) }()
	return func() []gauge {
		stop()
		return <-out
	}
}

// watchGauges reads the process's gauges every second, once its log
// says where they are served, until ctx ends.
func watchGauges(ctx context.Context, log string) []gauge {
	var addr string
	for addr == "" {
		if b, err := os.ReadFile(log); err == nil {
			addr, _ = localserver.MetricsAddr(b)
		}
		if addr == "" && clock.Sleep(ctx, clock.Real{}, 100*time.Millisecond) != nil {
			return nil
		}
	}
	client := &http.Client{Timeout: time.Second}
	var out []gauge
	for clock.Sleep(ctx, clock.Real{}, time.Second) == nil {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if g, ok := parseGauges(string(page)); ok {
			g.at = time.Now()
			out = append(out, g)
		}
	}
	return out
}
