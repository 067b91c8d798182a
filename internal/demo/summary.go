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
	"github.com/resetq/resetq/job"
)

type verifyInput struct {
	jobs             []*demoJob
	sqs              *sqs.Client
	queueURL, dlqURL string
	campaign         string
	throttled        map[string]int // by operation, from the quota proxy
	logPath          string
	workerTime       time.Duration
	start            time.Time
}

// deadLetter is one message read back from the DLQ.
type deadLetter struct {
	jobID, reason, campaign, body, steps, remediation string
}

// tally is what the summary counts.
type tally struct {
	tokens, signedOut            int // refresh tokens taken before the campaign; refused after it
	resets, resettable           int
	reinvited, invited           int
	disabledNoContact, noContact int // users without a verified contact: disabled by the campaign; in all
	disabledOthers               int // users the campaign disabled that it should not have
	disabledBefore               int
	deadLettered, lost, doubled  int
	resetByPool, wantByPool      map[string]int
	reasons                      map[string]*reasonRow
}

type reasonRow struct {
	count       int
	byKind      map[jobKind]int
	remediation map[string]int
}

// verify checks the run against the emulator's state, not the worker's own
// counters, prints the summary and fails unless every job is accounted for
// with the expected outcome.
func verify(ctx context.Context, in verifyInput) error {
	fmt.Println("\nchecking the emulator's state...")
	after, err := readUsers(ctx, in.jobs)
	if err != nil {
		return err
	}
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

	// Problems with the run as a whole come first, then per-job ones.
	var problems, jobProblems []string
	problem := func(format string, a ...any) {
		problems = append(problems, fmt.Sprintf(format, a...))
	}
	jobProblem := func(format string, a ...any) {
		jobProblems = append(jobProblems, fmt.Sprintf(format, a...))
	}
	byJob := map[string][]deadLetter{}
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

	t := tally{resetByPool: map[string]int{}, wantByPool: map[string]int{}, reasons: map[string]*reasonRow{}}
	for i, j := range in.jobs {
		checkJob(&t, in.campaign, j, after[i], byJob[j.id], jobProblem)
		checkUser(&t, j, after[i], jobProblem)
	}
	problems = append(problems, t.shortfalls(in.jobs)...)
	if src.visible+src.inFlight+src.delayed != 0 {
		problem("the source queue is not empty: %d visible, %d in flight, %d delayed", src.visible, src.inFlight, src.delayed)
	}
	if dlqDepth.visible+dlqDepth.inFlight+dlqDepth.delayed != len(dls) {
		problem("the DLQ held %d messages but %d were read back", dlqDepth.visible+dlqDepth.inFlight+dlqDepth.delayed, len(dls))
	}
	printSummary(in, t, len(dls), src)
	if n := len(problems) + len(jobProblems); n > 0 {
		fmt.Println()
		for _, p := range problems {
			fmt.Println("  problem:", p)
		}
		for i, p := range jobProblems {
			if i == 10 {
				fmt.Printf("  ... and %d more problem(s)\n", len(jobProblems)-i)
				break
			}
			fmt.Println("  problem:", p)
		}
		return fmt.Errorf("%d problem(s) found; see the worker log %s", n, in.logPath)
	}
	if t.resets+t.reinvited+t.deadLettered != len(in.jobs) {
		return errors.New("ledger does not add up")
	}
	fmt.Println("\nPASS: every session taken before the campaign is refused, and every job is a reset or re-invited user" +
		"\n      or exactly one dead letter with the expected reason, steps and remediation")
	return nil
}

// shortfalls compares the totals with what the campaign must achieve.
func (t *tally) shortfalls(jobs []*demoJob) []string {
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	for _, c := range []struct {
		got, want int
		what      string
	}{
		{t.signedOut, t.tokens, "refresh tokens taken before the campaign refused (NotAuthorizedException)"},
		{t.resets, t.resettable, "confirmed users RESET_REQUIRED"},
		{t.reinvited, t.invited, "invited users re-invited (old temporary password refused with NotAuthorizedException)"},
		{t.disabledNoContact, t.noContact, "users without verified contact disabled"},
		{t.disabledOthers, 0, "other users disabled by the campaign"},
	} {
		if c.got != c.want {
			add("%d %s, want %d", c.got, c.what, c.want)
		}
	}
	for k := kindConfirmed; k <= kindMalformed; k++ {
		if !k.deadLettered() {
			continue
		}
		want, got := 0, t.reasons[kindInfo[k].end]
		for _, j := range jobs {
			if j.kind == k {
				want++
			}
		}
		if want > 0 && (got == nil || got.byKind[k] != want) {
			n := 0
			if got != nil {
				n = got.byKind[k]
			}
			add("%d %s job(s) should be in the DLQ as %s, found %d", want, k, kindInfo[k].end, n)
		}
	}
	return out
}

// checkJob puts a job in the ledger, by moto's state and the DLQ: it ended
// reset, re-invited, as exactly one dead letter, lost, or twice.
func checkJob(t *tally, campaign string, j *demoJob, a userAfter, ds []deadLetter, jobProblem func(string, ...any)) {
	info := kindInfo[j.kind]
	switch j.kind {
	case kindConfirmed:
		t.resettable++
		t.wantByPool[j.pool.poolID]++
	case kindInvited:
		t.invited++
	}
	ended := ""
	switch {
	case a.status == "RESET_REQUIRED":
		ended = endReset
	case j.kind == kindInvited && a.status == "FORCE_CHANGE_PASSWORD" && a.oldTemp == "NotAuthorizedException":
		ended = endReinvited
	}
	switch {
	case ended != "" && len(ds) == 0:
		if ended == endReset {
			t.resets++
			t.resetByPool[j.pool.poolID]++
		} else {
			t.reinvited++
		}
		if ended != info.end {
			jobProblem("%s (%s %s/%s) was %s; expected %s", j.id, j.kind, j.pool.poolID, j.user, ended, info.end)
		}
	case ended == "" && len(ds) == 1:
		t.deadLettered++
		t.count(j.kind, ds[0])
		checkDeadLetter(campaign, j, ds[0], jobProblem)
	case ended == "" && len(ds) == 0:
		t.lost++
		detail := fmt.Sprintf("status %q", a.status)
		if j.kind == kindInvited {
			detail += ", old temporary password " + a.oldTemp
		}
		jobProblem("%s (%s) is unaccounted for: neither reset nor re-invited, and not in the DLQ (%s)", j.id, j.kind, detail)
	default:
		t.doubled++
		jobProblem("%s (%s) is counted twice: %s, %d DLQ message(s)", j.id, j.kind, ended, len(ds))
	}
}

// count adds a dead letter to the reasons table.
func (t *tally) count(k jobKind, d deadLetter) {
	row := t.reasons[d.reason]
	if row == nil {
		row = &reasonRow{byKind: map[jobKind]int{}, remediation: map[string]int{}}
		t.reasons[d.reason] = row
	}
	row.count++
	row.byKind[k]++
	if d.remediation != "" {
		row.remediation[d.remediation]++
	}
}

// checkDeadLetter checks a job's one dead letter against its kind.
func checkDeadLetter(campaign string, j *demoJob, d deadLetter, jobProblem func(string, ...any)) {
	info := kindInfo[j.kind]
	switch {
	case !j.kind.deadLettered():
		jobProblem("%s (%s user %s) was dead-lettered as %q; expected it %s", j.id, j.kind, j.user, d.reason, info.end)
	case d.reason != info.end:
		jobProblem("%s (%s) was dead-lettered as %q; expected %q", j.id, j.kind, d.reason, info.end)
	case d.steps != info.steps || d.remediation != info.remediation:
		jobProblem("%s (%s): DLQ %s=%q %s=%q, want %q and %q", j.id, j.kind,
			job.AttrSteps, d.steps, job.AttrRemediation, d.remediation, info.steps, info.remediation)
	}
	if d.body != j.body {
		jobProblem("%s: DLQ body %q differs from the job sent, %q", j.id, d.body, j.body)
	}
	if d.campaign != campaign {
		jobProblem("%s: DLQ %s is %q, want %q", j.id, job.AttrCampaign, d.campaign, campaign)
	}
}

// checkUser checks what the campaign did to a job's user's credentials:
// sessions ended, and disabled exactly when expected.
func checkUser(t *tally, j *demoJob, a userAfter, jobProblem func(string, ...any)) {
	info := kindInfo[j.kind]
	if info.signedIn {
		t.tokens++
		switch a.refresh {
		case "NotAuthorizedException":
			t.signedOut++
		case accepted:
			jobProblem("%s (%s %s/%s): its refresh token from before the campaign still works", j.id, j.kind, j.pool.poolID, j.user)
		default:
			jobProblem("%s (%s %s/%s): its refresh token was refused with %s, want NotAuthorizedException", j.id, j.kind, j.pool.poolID, j.user, a.refresh)
		}
	}
	if j.pool == nil || j.kind == kindMissing {
		return
	}
	switch {
	case j.kind == kindDisabled:
		t.disabledBefore++
	case j.kind == kindNoContact:
		t.noContact++
	}
	switch {
	case a.enabled || j.kind == kindDisabled:
	case j.kind == kindNoContact:
		t.disabledNoContact++
	default:
		t.disabledOthers++
	}
	if a.enabled == info.disabled {
		jobProblem("%s (%s %s/%s): enabled=%v after the campaign, want %v", j.id, j.kind, j.pool.poolID, j.user, a.enabled, !info.disabled)
	}
}

func printSummary(in verifyInput, t tally, dlqLen int, src queueDepth) {
	fmt.Println("\nsummary (from moto's state, not the worker's counters)")
	var pools []string
	for _, p := range plans {
		pools = append(pools, fmt.Sprintf("%s %d/%d", p.region, t.resetByPool[p.poolID], t.wantByPool[p.poolID]))
	}
	fmt.Printf("  signed out            %d of %d refresh tokens taken before the campaign now refused (NotAuthorizedException)\n",
		t.signedOut, t.tokens)
	fmt.Printf("  users RESET_REQUIRED  %d of %d confirmed (%s)\n", t.resets, t.resettable, strings.Join(pools, ", "))
	fmt.Printf("  re-invited            %d of %d invited users: old temporary password refused, still FORCE_CHANGE_PASSWORD\n", t.reinvited, t.invited)
	fmt.Printf("  disabled              %d of %d users without verified contact, %d others (the %d disabled before the campaign still are)\n",
		t.disabledNoContact, t.noContact, t.disabledOthers, t.disabledBefore)
	fmt.Printf("  dead-letter queue     %d messages by resetq.reason:\n", dlqLen)
	names := make([]string, 0, len(t.reasons))
	for r := range t.reasons {
		names = append(names, r)
	}
	sort.Strings(names)
	for _, r := range names {
		var kinds []string
		for k := kindConfirmed; k <= kindMalformed; k++ {
			if n := t.reasons[r].byKind[k]; n > 0 {
				kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
			}
		}
		rems := make([]string, 0, len(t.reasons[r].remediation))
		for rem := range t.reasons[r].remediation {
			rems = append(rems, rem)
		}
		sort.Strings(rems)
		for _, rem := range rems {
			kinds = append(kinds, fmt.Sprintf("%d with %s=%s", t.reasons[r].remediation[rem], job.AttrRemediation, rem))
		}
		fmt.Printf("    %-27s %3d  (%s)\n", r, t.reasons[r].count, strings.Join(kinds, ", "))
	}
	fmt.Printf("  source queue          %d visible, %d in flight, %d delayed\n", src.visible, src.inFlight, src.delayed)
	fmt.Printf("  throttled by proxy    %d AdminResetUserPassword, %d AdminUserGlobalSignOut calls (quotas %d/s and %d/s per Region)\n",
		in.throttled["AdminResetUserPassword"], in.throttled["AdminUserGlobalSignOut"], quota, signOutQuota)
	if n, span := resetSpan(in.logPath); n > 1 && span > 0 {
		fmt.Printf("  reset rate            %.1f resets/s while there was work (%d resets in %.1fs, first to last, from the worker's log;\n"+
			"                        each job signs its user out after the reset, paced by --sign-out-rate, 20/s per Region: most users are in us-east-1)\n",
			float64(n-1)/span.Seconds(), n, span.Seconds())
	}
	fmt.Printf("  worker wall time      %.1fs, incl. the --exit-when-idle %s wait before exiting\n", in.workerTime.Seconds(), idleExit)
	fmt.Printf("  elapsed               %.1fs in all\n", time.Since(in.start).Seconds())
	fmt.Printf("ledger: %d jobs = %d reset + %d re-invited + %d dead-lettered, %d lost\n",
		len(in.jobs), t.resets, t.reinvited, t.deadLettered, t.lost)
	if t.doubled > 0 {
		fmt.Printf("        %d job(s) counted twice\n", t.doubled)
	}
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
				jobID:       attr(attrJob),
				reason:      attr(job.AttrReason),
				campaign:    attr(job.AttrCampaign),
				body:        aws.ToString(m.Body),
				steps:       attr(job.AttrSteps),
				remediation: attr(job.AttrRemediation),
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
