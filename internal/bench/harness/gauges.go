package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/resetq/resetq/clock"
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

// metricsAddr finds where a resetq process serves /metrics in its log
// ("serving metrics", text or JSON).
var metricsAddr = regexp.MustCompile(`serving metrics.*?addr"?[=:]"?([0-9.]+:[0-9]+)`)

// parseGauges reads the reset's pacing gauges from a /metrics page; ok is
// false without resetq_ratelimit_limit.
func parseGauges(page string) (g gauge, ok bool) {
	g.Room = -1
	for line := range strings.Lines(page) {
		name, rest, found := strings.Cut(strings.TrimSpace(line), "{")
		if !found {
			continue
		}
		labels, value, found := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if !found || err != nil {
			continue
		}
		switch {
		case name == "resetq_ratelimit_limit":
			g.Limit, ok = v, true
		case name == "resetq_ratelimit_usage_cap":
			g.Cap = v
		case name == "resetq_category_room" && strings.Contains(labels, `category="UserAccountRecovery"`):
			g.Room = v
		}
	}
	return g, ok
}

// watchGauges reads the process's gauges every second, once its log
// says where they are served, until ctx ends.
func watchGauges(ctx context.Context, log string) []gauge {
	var addr string
	for addr == "" {
		if b, err := os.ReadFile(log); err == nil {
			if m := metricsAddr.FindSubmatch(b); m != nil {
				addr = string(m[1])
			}
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
