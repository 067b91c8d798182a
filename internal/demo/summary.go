package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/worker"
)

type verifyInput struct {
	jobs             []*job
	sqs              *sqs.Client
	queueURL, dlqURL string
	campaign         string
	throttled        int
	logPath          string
	workerTime       time.Duration
	start            time.Time
}

// deadLetter is one message read back from the DLQ.
type deadLetter struct {
	jobID, reason, campaign, body string
}

// verify checks the run against the emulator's state, not the worker's own
// counters, prints the summary and fails unless every job is accounted for
// with the expected outcome.
func verify(ctx context.Context, in verifyInput) error {
	fmt.Println("\nchecking the emulator's state...")

	// Users: which are RESET_REQUIRED now.
	status := make([]string, len(in.jobs))
	err := parallel(ctx, 8, len(in.jobs), func(ctx context.Context, i int) error {
		j := in.jobs[i]
		if j.pool == nil || j.kind == kindMissing {
			return nil
		}
		s, err := moto.UserStatus(ctx, j.pool.cfg, j.pool.poolID, j.user)
		status[i] = s
		return err
	})
	if err != nil {
		return fmt.Errorf("read user status: %w", err)
	}

	// Source queue: nothing left anywhere.
	src, err := depth(ctx, in.sqs, in.queueURL)
	if err != nil {
		return err
	}
	dlqDepth, err := depth(ctx, in.sqs, in.dlqURL)
	if err != nil {
		return err
	}
	dls, err := drainDLQ(ctx, in.sqs, in.dlqURL)
	if err != nil {
		return err
	}

	// The ledger: each job is a reset user or exactly one dead letter.
	byJob := map[string][]deadLetter{}
	// Problems with the run as a whole come first, then per-job ones.
	var problems, jobProblems []string
	problem := func(format string, a ...any) {
		problems = append(problems, fmt.Sprintf(format, a...))
	}
	jobProblem := func(format string, a ...any) {
		jobProblems = append(jobProblems, fmt.Sprintf(format, a...))
	}
	for _, d := range dls {
		byJob[d.jobID] = append(byJob[d.jobID], d)
	}
	known := map[string]bool{}
	for _, j := range in.jobs {
		known[j.id] = true
	}
	for id, ds := range byJob {
		if !known[id] {
			problem("%d DLQ message(s) with %s=%q that the demo never sent", len(ds), attrJob, id)
		}
	}

	type reasonRow struct {
		count  int
		byKind map[jobKind]int
	}
	reasons := map[string]*reasonRow{}
	resetByPool := map[string]int{}
	wantByPool := map[string]int{}
	var resets, deadLettered, lost, doubled, resettable int
	for i, j := range in.jobs {
		if j.kind == kindConfirmed {
			resettable++
			wantByPool[j.pool.poolID]++
		}
		isReset := status[i] == "RESET_REQUIRED"
		ds := byJob[j.id]
		switch {
		case isReset && len(ds) == 0:
			resets++
			resetByPool[j.pool.poolID]++
			if j.kind != kindConfirmed {
				jobProblem("%s (%s %s/%s) was reset; expected %s", j.id, j.kind, j.pool.poolID, j.user, j.kind.expectedReason())
			}
		case !isReset && len(ds) == 1:
			deadLettered++
			d := ds[0]
			row := reasons[d.reason]
			if row == nil {
				row = &reasonRow{byKind: map[jobKind]int{}}
				reasons[d.reason] = row
			}
			row.count++
			row.byKind[j.kind]++
			switch want := j.kind.expectedReason(); {
			case want == "":
				jobProblem("%s (%s user %s) was dead-lettered as %q; expected a reset", j.id, j.kind, j.user, d.reason)
			case d.reason != want:
				jobProblem("%s (%s) was dead-lettered as %q; expected %q", j.id, j.kind, d.reason, want)
			}
			if d.body != j.body {
				jobProblem("%s: DLQ body %q differs from the job sent, %q", j.id, d.body, j.body)
			}
			if d.campaign != in.campaign {
				jobProblem("%s: DLQ %s is %q, want %q", j.id, worker.AttrCampaign, d.campaign, in.campaign)
			}
		case !isReset && len(ds) == 0:
			lost++
			jobProblem("%s (%s) is unaccounted for: user not reset and not in the DLQ (status %q)", j.id, j.kind, status[i])
		default:
			doubled++
			jobProblem("%s (%s) is counted twice: reset=%v, %d DLQ message(s)", j.id, j.kind, isReset, len(ds))
		}
	}
	if src.visible+src.inFlight+src.delayed != 0 {
		problem("the source queue is not empty: %d visible, %d in flight, %d delayed", src.visible, src.inFlight, src.delayed)
	}
	if dlqDepth.visible+dlqDepth.inFlight+dlqDepth.delayed != len(dls) {
		problem("the DLQ held %d messages but %d were read back", dlqDepth.visible+dlqDepth.inFlight+dlqDepth.delayed, len(dls))
	}
	for k := kindNoContact; k <= kindMalformed; k++ {
		want, got := 0, reasons[k.expectedReason()]
		for _, j := range in.jobs {
			if j.kind == k {
				want++
			}
		}
		if want > 0 && (got == nil || got.byKind[k] != want) {
			n := 0
			if got != nil {
				n = got.byKind[k]
			}
			problem("%d %s job(s) should be in the DLQ as %s, found %d", want, k, k.expectedReason(), n)
		}
	}

	// The summary.
	fmt.Println("\nsummary (from moto's state, not the worker's counters)")
	var pools []string
	for _, p := range plans {
		pools = append(pools, fmt.Sprintf("%s %d/%d", p.region, resetByPool[p.poolID], wantByPool[p.poolID]))
	}
	fmt.Printf("  users RESET_REQUIRED  %d of %d resettable (%s)\n", resets, resettable, strings.Join(pools, ", "))
	fmt.Printf("  dead-letter queue     %d messages by resetq.reason:\n", len(dls))
	names := make([]string, 0, len(reasons))
	for r := range reasons {
		names = append(names, r)
	}
	sort.Strings(names)
	for _, r := range names {
		var kinds []string
		for k := kindConfirmed; k <= kindMalformed; k++ {
			if n := reasons[r].byKind[k]; n > 0 {
				kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
			}
		}
		fmt.Printf("    %-27s %3d  (%s)\n", r, reasons[r].count, strings.Join(kinds, ", "))
	}
	fmt.Printf("  source queue          %d visible, %d in flight, %d delayed\n", src.visible, src.inFlight, src.delayed)
	fmt.Printf("  throttled by proxy    %d AdminResetUserPassword calls (quota %d/s per Region)\n", in.throttled, quota)
	if n, span := resetSpan(in.logPath); n > 1 && span > 0 {
		fmt.Printf("  reset rate            %.1f resets/s while there was work (%d resets in %.1fs, first to last, from the worker's log;\n"+
			"                        paced by --rate, 24/s per Region: most users here are in us-east-1)\n", float64(n-1)/span.Seconds(), n, span.Seconds())
	}
	fmt.Printf("  worker wall time      %.1fs, incl. the --exit-when-idle %s wait before exiting\n", in.workerTime.Seconds(), idleExit)
	fmt.Printf("  elapsed               %.1fs in all\n", time.Since(in.start).Seconds())
	fmt.Printf("ledger: %d jobs = %d reset + %d dead-lettered, %d lost\n", len(in.jobs), resets, deadLettered, lost)
	if doubled > 0 {
		fmt.Printf("        %d job(s) counted twice\n", doubled)
	}

	if n := len(problems) + len(jobProblems); n > 0 {
		fmt.Println()
		for _, p := range problems {
			fmt.Println("  problem:", p)
		}
		for i, p := range jobProblems {
			if i == 10 {
				fmt.Printf("  ... and %d more job(s)\n", len(jobProblems)-i)
				break
			}
			fmt.Println("  problem:", p)
		}
		return fmt.Errorf("%d problem(s) found; see the worker log %s", n, in.logPath)
	}
	if resets+deadLettered != len(in.jobs) {
		return errors.New("ledger does not add up")
	}
	fmt.Println("\nPASS: every job is a reset user or exactly one dead letter with the expected reason")
	return nil
}

type queueDepth struct{ visible, inFlight, delayed int }

func depth(ctx context.Context, client *sqs.Client, url string) (queueDepth, error) {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
		},
	})
	if err != nil {
		return queueDepth{}, fmt.Errorf("read depth of %s: %w", url, err)
	}
	var d queueDepth
	for _, f := range []struct {
		name sqstypes.QueueAttributeName
		dst  *int
	}{
		{sqstypes.QueueAttributeNameApproximateNumberOfMessages, &d.visible},
		{sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible, &d.inFlight},
		{sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed, &d.delayed},
	} {
		if *f.dst, err = strconv.Atoi(out.Attributes[string(f.name)]); err != nil {
			return queueDepth{}, fmt.Errorf("depth of %s: attribute %s: %w", url, f.name, err)
		}
	}
	return d, nil
}

// drainDLQ receives every message of the DLQ with its attributes, in rounds
// of 10, until the queue shows nothing visible. Messages stay in the queue
// (hidden for 10 minutes); moto goes away with them.
func drainDLQ(ctx context.Context, client *sqs.Client, url string) ([]deadLetter, error) {
	seen := map[string]bool{}
	var out []deadLetter
	for round := 0; ; round++ {
		if round == 500 {
			return nil, fmt.Errorf("read the DLQ: still messages after %d rounds", round)
		}
		resp, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:              aws.String(url),
			MaxNumberOfMessages:   10,
			VisibilityTimeout:     600,
			WaitTimeSeconds:       0,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			return nil, fmt.Errorf("read the DLQ: %w", err)
		}
		if len(resp.Messages) == 0 {
			d, err := depth(ctx, client, url)
			if err != nil {
				return nil, err
			}
			if d.visible == 0 {
				return out, nil
			}
			continue
		}
		for _, m := range resp.Messages {
			id := aws.ToString(m.MessageId)
			if seen[id] {
				continue // SQS may deliver a message twice; count it once
			}
			seen[id] = true
			attr := func(name string) string { return aws.ToString(m.MessageAttributes[name].StringValue) }
			out = append(out, deadLetter{
				jobID:    attr(attrJob),
				reason:   attr(worker.AttrReason),
				campaign: attr(worker.AttrCampaign),
				body:     aws.ToString(m.Body),
			})
		}
	}
}

// resetSpan reads the worker's text log and returns how many jobs ended
// reset and the time from the first of those lines to the last.
func resetSpan(logPath string) (int, time.Duration) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0, 0
	}
	var n int
	var first, last time.Time
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, `msg="job done"`) || !strings.Contains(line, " outcome=reset") {
			continue
		}
		field, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		t, err := time.Parse(time.RFC3339Nano, field)
		if err != nil {
			continue
		}
		if n == 0 {
			first = t
		}
		last = t
		n++
	}
	return n, last.Sub(first)
}
