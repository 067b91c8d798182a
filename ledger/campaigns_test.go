package ledger_test

import (
	"testing"
	"time"

	"github.com/resetq/resetq/ledger"
)

// TestCampaignsIndex: enqueue names its campaigns in the index, newest
// first, and a campaign's rows and counts do not see the index.
func TestCampaignsIndex(t *testing.T) {
	t.Parallel()
	b := newBench(t)
	for i, c := range []string{"old", "new", "old"} {
		l, err := ledger.New(b.api, b.cfg) // each enqueue is a process of its own
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Enqueued(t.Context(), []ledger.Key{key(c, "u1"), key(c, "u2")}, at(time.Duration(i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.l.Campaigns(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "old" || !got[0].LastEnqueued.Equal(at(2*time.Hour)) || !got[0].FirstEnqueued.Equal(at(0)) || got[1].Name != "new" {
		t.Fatalf("campaigns %+v, want old (last at +2h, first at 0) then new", got)
	}
	p, err := b.l.Progress(t.Context(), "old")
	if err != nil {
		t.Fatal(err)
	}
	if tot := p.Total(); tot.Enqueued != 2 || tot.Left() != 2 {
		t.Fatalf("old's counts %+v, want 2 enqueued, 2 left", tot)
	}
	n := 0
	if err := b.l.Rows(t.Context(), "old", func(ledger.Row) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("old's rows: %d, %v; want 2", n, err)
	}
}
