package clocktest

import (
	"context"
	"testing"
	"time"

	"github.com/resetq/resetq/clock"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func TestTimerFiresWhenDue(t *testing.T) {
	f := New(t0)
	tm := f.NewTimer(time.Second)
	f.Advance(999 * time.Millisecond)
	select {
	case <-tm.C():
		t.Fatal("timer fired early")
	default:
	}
	f.Advance(time.Millisecond)
	if got := <-tm.C(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("fired at %v", got)
	}
	if f.Waiters() != 0 || tm.Stop() {
		t.Fatal("a fired timer still waits")
	}
}

func TestTickerTicksEachPeriodAndStops(t *testing.T) {
	f := New(t0)
	tk := f.NewTicker(10 * time.Second)
	for i := 1; i <= 3; i++ {
		f.Advance(10 * time.Second)
		if got := <-tk.C(); !got.Equal(t0.Add(time.Duration(i) * 10 * time.Second)) {
			t.Fatalf("tick %d at %v", i, got)
		}
	}
	tk.Stop()
	f.Advance(time.Minute)
	select {
	case <-tk.C():
		t.Fatal("stopped ticker ticked")
	default:
	}
}

func TestAfterFuncRunsOnceUnlessStopped(t *testing.T) {
	f := New(t0)
	ran := make(chan struct{}, 2)
	f.AfterFunc(time.Second, func() { ran <- struct{}{} })
	stopped := f.AfterFunc(time.Second, func() { ran <- struct{}{} })
	if !stopped.Stop() {
		t.Fatal("Stop of a waiting function said false")
	}
	f.Advance(time.Hour)
	<-ran
	select {
	case <-ran:
		t.Fatal("a stopped function ran")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestSleepEndsWithTimeOrContext(t *testing.T) {
	f := New(t0)
	done := make(chan error)
	go func() { done <- clock.Sleep(context.Background(), f, time.Minute) }()
	for f.Waiters() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := clock.Sleep(ctx, f, time.Minute); err == nil {
		t.Fatal("Sleep ignored its ended context")
	}
}

func TestTimeNeverGoesBack(t *testing.T) {
	f := New(t0)
	f.Set(t0.Add(-time.Hour))
	if !f.Now().Equal(t0) {
		t.Fatalf("now %v", f.Now())
	}
}
