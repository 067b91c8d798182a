package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
)

// The baselines are what people write instead of resetq, in process, with
// the real SDK calling the stand-in. None reads SQS: the jobs are in
// memory. A job whose call finally fails (the SDK's retries are exhausted)
// goes back to the end of the line, so every baseline resets every user.

// naiveGoroutines is the naive baselines' concurrency (resetq's default).
const naiveGoroutines = 16

// baseline runs one of the in-process baselines over n users until each is
// reset or ctx ends.
func (w *world) baseline(ctx context.Context, kind string, n, quota int) error {
	var retryer func() aws.Retryer
	switch kind {
	case contNaive, contPerSecond:
		retryer = func() aws.Retryer { return retry.NewStandard() }
	case contAdaptive:
		retryer = func() aws.Retryer { return retry.NewAdaptiveMode() }
	default:
		return fmt.Errorf("unknown baseline %q", kind)
	}
	client := cip.NewFromConfig(w.cfg, func(o *cip.Options) {
		o.BaseEndpoint = aws.String(w.stub.URL)
		o.Retryer = retryer()
	})
	reset := func(ctx context.Context, user string) error {
		_, err := client.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{
			UserPoolId: aws.String(pool), Username: aws.String(user)})
		return err
	}
	if kind == contPerSecond {
		return perSecond(ctx, n, quota, reset)
	}
	return goroutines(ctx, n, naiveGoroutines, reset)
}

// goroutines resets n users with g goroutines, as fast as the SDK lets them.
func goroutines(ctx context.Context, n, g int, reset func(context.Context, string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan string, n)
	for i := range n {
		jobs <- username(i)
	}
	var done atomic.Int64
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case u := <-jobs:
					if err := reset(ctx, u); err != nil {
						jobs <- u // retries exhausted: try again later
						continue
					}
					if done.Add(1) == int64(n) {
						cancel()
					}
				}
			}
		}()
	}
	wg.Wait()
	if done.Load() < int64(n) {
		return fmt.Errorf("%d of %d users reset: %w", done.Load(), n, context.Cause(ctx))
	}
	return nil
}

// perSecond resets n users as scripts do: each wall-clock second, fire up
// to quota calls at once, wait for them, then sleep to the next second.
func perSecond(ctx context.Context, n, quota int, reset func(context.Context, string) error) error {
	pending := make([]string, 0, n)
	for i := range n {
		pending = append(pending, username(i))
	}
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%d of %d users reset: %w", n-len(pending), n, err)
		}
		batch := pending[:min(quota, len(pending))]
		failed := make([]bool, len(batch))
		var wg sync.WaitGroup
		for i, u := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				failed[i] = reset(ctx, u) != nil
			}()
		}
		wg.Wait()
		var again []string
		for i, u := range batch {
			if failed[i] {
				again = append(again, u)
			}
		}
		pending = append(pending[len(batch):], again...)
		if len(pending) == 0 {
			break
		}
		now := time.Now()
		sleep(ctx, now.Truncate(time.Second).Add(time.Second).Sub(now))
	}
	return nil
}
