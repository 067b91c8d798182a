package main

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/metrics"
	"github.com/resetq/resetq/status"
	"github.com/resetq/resetq/worker"
)

// progressEvery is how often the worker logs its progress.
const progressEvery = time.Minute

// progressLoop logs, every progressEvery until ctx ends, this worker's
// jobs by outcome and, with a ledger (l not nil), each campaign's progress
// across every replica, which it also exports as resetq_campaign_users.
func progressLoop(ctx context.Context, w *worker.Worker, l *ledger.Ledger, m *metrics.Metrics, log *slog.Logger) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	start := time.Now()
	left := map[string]*status.LeftSamples{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		logTally(log, "progress", w.Tally(), time.Since(start))
		if l == nil {
			continue
		}
		for _, name := range w.Campaigns() {
			p, err := l.Progress(ctx, name)
			if err != nil {
				log.Warn("reading the campaign's progress from the ledger failed", "campaign", name, "error", err)
				continue
			}
			counts := campaignCounts(p)
			s := left[name]
			if s == nil {
				s = &status.LeftSamples{Window: 15 * time.Minute}
				left[name] = s
			}
			total := status.NewCampaign(name, counts, nil).Total
			c := status.NewCampaign(name, counts, s.Add(time.Now(), total.Left))
			exportCampaign(m, c)
			log.Info("campaign progress", "campaign", name, "enqueued", c.Total.Enqueued, "done", c.Total.Done,
				"dead_lettered", c.Total.Ended()-c.Total.Done, "left", c.Total.Left, "share_ended", c.Total.ShareDone,
				"per_second", c.Drain.PerSecond, "eta", c.Drain.ETAText)
		}
	}
}

// logTally logs this process's jobs by outcome and their rate.
func logTally(log *slog.Logger, msg string, tally map[string]int64, elapsed time.Duration) {
	var n int64
	args := []any{"elapsed", elapsed.Round(time.Second)}
	for _, k := range slices.Sorted(maps.Keys(tally)) {
		n += tally[k]
		args = append(args, k, tally[k])
	}
	if s := elapsed.Seconds(); s > 0 {
		args = append(args, "jobs_per_second", float64(n)/s)
	}
	log.Info(msg, append(args, "jobs", n)...)
}

// exportCampaign sets resetq_campaign_users for c.
func exportCampaign(m *metrics.Metrics, c status.Campaign) {
	t := c.Total
	for state, v := range map[string]int64{"enqueued": t.Enqueued, "reset": t.Reset, "reinvited": t.Reinvited,
		"disabled": t.Disabled, "dead_lettered": t.Ended() - t.Done, "left": t.Left} {
		m.CampaignUsers.WithLabelValues(c.Name, state).Set(float64(v))
	}
}
