package worker

import (
	"context"
	"github.com/resetq/resetq/clock"
	"sync"
	"time"
)

// batchSize is SQS's largest DeleteMessageBatch / ChangeMessageVisibilityBatch.
const batchSize = 10

// maxFlushes bounds the batch calls a batcher has under way at once.
const maxFlushes = 4

// batcher groups receipt handles into batches of up to 10 for one SQS batch
// call. A batch goes out when it is full, when its first entry has waited
// linger, or at close. With linger 0 it sends whatever is queued at once.
type batcher struct {
	ctx    context.Context
	clock  clock.Clock
	linger time.Duration
	flush  func(context.Context, []string)

	in      chan string
	done    chan struct{}
	flushes sync.WaitGroup
	slots   chan struct{}
}

func newBatcher(ctx context.Context, c clock.Clock, linger time.Duration, flush func(context.Context, []string)) *batcher {
	b := &batcher{ctx: ctx, clock: c, linger: linger, flush: flush,
		in: make(chan string, 4*batchSize), done: make(chan struct{}), slots: make(chan struct{}, maxFlushes)}
	go b.run()
	return b
}

// add queues a receipt handle. It must not be called after close.
func (b *batcher) add(receipt string) { b.in <- receipt }

// close sends what is queued and waits for every batch call to end.
func (b *batcher) close() {
	close(b.in)
	<-b.done
}

func (b *batcher) run() {
	defer close(b.done)
	defer b.flushes.Wait()
	var pending []string
	var timer clock.Timer
	var due <-chan time.Time // timer's, while a batch lingers
	send := func() {
		for len(pending) > 0 {
			n := min(batchSize, len(pending))
			batch := pending[:n:n]
			pending = pending[n:]
			b.slots <- struct{}{}
			b.flushes.Go(func() {
				defer func() { <-b.slots }()
				b.flush(b.ctx, batch)
			})
		}
		if timer != nil {
			timer.Stop()
		}
		pending, timer, due = nil, nil, nil
	}
	for {
		select {
		case r, ok := <-b.in:
			if !ok {
				send()
				return
			}
			pending = append(pending, r)
			if b.linger == 0 {
				pending = drain(b.in, pending)
			}
			switch {
			case len(pending) >= batchSize || b.linger == 0:
				send()
			case timer == nil:
				timer = b.clock.NewTimer(b.linger)
				due = timer.C()
			}
		case <-due:
			send()
		}
	}
}

// drain appends what is queued in c, without waiting, up to a batch.
func drain(c chan string, pending []string) []string {
	for len(pending) < batchSize {
		select {
		case r, ok := <-c:
			if !ok {
				return pending
			}
			pending = append(pending, r)
		default:
			return pending
		}
	}
	return pending
}
