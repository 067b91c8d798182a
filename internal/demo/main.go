// Command demo runs an incident campaign end to end with no AWS account:
// moto_server emulates SQS and Cognito, a quota proxy enforces Cognito's
// quotas per Region, users sign in before the campaign (as an attacker with
// their passwords would), and the real resetq binary drains a queue of jobs
// with --global-sign-out --reinvite --unreachable disable. The demo then
// checks the emulator's state: refresh tokens taken before the campaign are
// refused, invited users' old temporary passwords too, users without a
// verified contact are disabled, and every job ended as a reset or
// re-invited user or as exactly one dead letter with the right reason.
//
// Part 3 (accounts.go) is one campaign across two AWS accounts, the
// second reached through a role (--pool-roles), each paced on its own.
//
// Part 2 (emaillimit.go) is an incident whose codes go out through
// Cognito's default email: the proxy plays its daily limit hitting after a
// few codes. An attacker signed in with the leaked passwords before the
// campaign; `resetq work --incident` (signed jobs, put on the queue by
// `resetq enqueue`) kills each waiting user's password and signs the user
// out. During the wait the attacker's sign-ins and refresh tokens are
// refused; after the limit lifts every user is RESET_REQUIRED and no token
// he took refreshes.
//
//	go build -o bin/resetq ./cmd/resetq && go run ./internal/demo -resetq bin/resetq
//
// Without -resetq it builds the binary itself. It needs moto_server on PATH
// (pip install 'moto[server]') and exits non-zero on any failure.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/localserver"
	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/job"
)

const (
	quota           = 30 // Cognito's UserAccountRecovery quota, calls/s per Region
	signOutQuota    = 25 // Cognito's UserUpdate quota (AdminUserGlobalSignOut), calls/s per Region
	maxReceiveCount = 10
	visibility      = 30 * time.Second
	idleExit        = 3 * time.Second
	attrJob         = "demo.job" // our own attribute: which job a DLQ message was
)

// poolPlan is how many users of each state a pool gets, and how many jobs
// name users that do not exist.
type poolPlan struct {
	region                                  string
	confirmed, noContact, invited, disabled int
	missing                                 int
	poolID                                  string // filled in by createFixtures
	clientID                                string // filled in by signIn
	cfg                                     aws.Config
}

var plans = []*poolPlan{
	{region: "us-east-1", confirmed: 100, noContact: 3, invited: 3, disabled: 3, missing: 3},
	{region: "eu-west-1", confirmed: 20, noContact: 2, invited: 2, disabled: 2, missing: 2},
}

// jobKind is what a job is expected to end as.
type jobKind int

const (
	kindConfirmed jobKind = iota
	kindNoContact
	kindInvited
	kindDisabled
	kindMissing
	kindMalformed
)

// Ends of a job that leave no dead letter.
const (
	endReset     = "reset"     // the user is RESET_REQUIRED
	endReinvited = "reinvited" // the user is FORCE_CHANGE_PASSWORD and its old temporary password is refused
)

// kindInfo is how each kind of job must end under --global-sign-out
// --reinvite --unreachable disable.
var kindInfo = [...]struct {
	name        string
	end         string // endReset, endReinvited, or the resetq.reason of its one dead letter
	steps       string // the dead letter's resetq.steps
	remediation string // the dead letter's resetq.remediation
	signedIn    bool   // signs in before the campaign; its refresh token must be refused after it
	disabled    bool   // disabled after the campaign
}{
	kindConfirmed: {name: "confirmed", end: endReset, signedIn: true},
	kindNoContact: {name: "no verified contact", end: "InvalidParameterException", steps: "disabled,signed_out",
		remediation: "disabled", signedIn: true, disabled: true},
	kindInvited:   {name: "invited", end: endReinvited},
	kindDisabled:  {name: "disabled", end: "NotAuthorizedException", steps: "signed_out", disabled: true},
	kindMissing:   {name: "missing user", end: "UserNotFoundException"},
	kindMalformed: {name: "malformed", end: job.ReasonInvalidJob},
}

func (k jobKind) String() string { return kindInfo[k].name }

// deadLettered reports whether the kind's jobs end as a dead letter.
func (k jobKind) deadLettered() bool {
	return kindInfo[k].end != endReset && kindInfo[k].end != endReinvited
}

var stateOfKind = map[jobKind]moto.UserState{
	kindConfirmed: moto.Confirmed,
	kindNoContact: moto.ConfirmedNoContact,
	kindDisabled:  moto.Disabled,
}

// demoJob is one message the demo enqueues.
type demoJob struct {
	id   string
	kind jobKind
	pool *poolPlan // nil for malformed jobs
	user string    // "" for malformed jobs
	body string
	// refresh is the refresh token the user got by signing in before the
	// campaign (kinds with signedIn).
	refresh string
}

func main() {
	resetqBin := flag.String("resetq", "", "resetq binary to run (default: build ./cmd/resetq into a temporary directory)")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up on the worker after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *resetqBin, *timeout)
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		if interrupted {
			fmt.Fprintf(os.Stderr, "\ndemo interrupted; emulator and worker stopped (%v)\n", err)
		} else {
			fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, resetqBin string, workerTimeout time.Duration) error {
	start := time.Now()
	if !moto.Installed() {
		return fmt.Errorf("%s is not on PATH; install it with: %s", moto.Binary, moto.InstallHint)
	}
	if resetqBin == "" {
		dir, err := os.MkdirTemp("", "resetq-demo-bin-")
		if err != nil {
			return fmt.Errorf("create build directory: %w", err)
		}
		defer os.RemoveAll(dir)
		resetqBin = filepath.Join(dir, "resetq")
		fmt.Println("building resetq (pass -resetq to use a built binary)...")
		build := exec.CommandContext(ctx, "go", "build", "-o", resetqBin, "github.com/resetq/resetq/cmd/resetq")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build resetq: %w", err)
		}
	}
	bin, err := exec.LookPath(resetqBin)
	if err != nil {
		return fmt.Errorf("resetq binary %q: %w (build it with: go build -o bin/resetq ./cmd/resetq)", resetqBin, err)
	}

	isolateFromShell()

	// 1. Emulator and quota proxy.
	srv, err := moto.Start(ctx)
	if err != nil {
		return fmt.Errorf("start moto_server: %w", err)
	}
	defer srv.Close()
	proxy, err := awsproxy.Start(srv.URL)
	if err != nil {
		return fmt.Errorf("start quota proxy: %w", err)
	}
	defer proxy.Close()
	proxy.SetQuota("AdminResetUserPassword", quota)
	proxy.SetQuota("AdminUserGlobalSignOut", signOutQuota)
	fmt.Printf("moto_server   %s (SQS, Cognito user pools)\n", srv.URL)
	fmt.Printf("quota proxy   %s -> moto, per Region at most %d/s AdminResetUserPassword, %d/s AdminUserGlobalSignOut\n",
		proxy.URL, quota, signOutQuota)

	// 2. Pools, users and queues.
	jobs, err := createFixtures(ctx, srv.URL)
	if err != nil {
		return err
	}
	if err := signIn(ctx, jobs); err != nil {
		return err
	}
	sqsCfg, err := moto.Config(ctx, srv.URL, moto.Region)
	if err != nil {
		return err
	}
	queueURL, dlqURL, err := moto.CreateQueues(ctx, sqsCfg, "resetq-demo", maxReceiveCount, visibility)
	if err != nil {
		return err
	}
	fmt.Printf("queues        %s (maxReceiveCount %d, visibility %s)\n              %s\n",
		queueURL, maxReceiveCount, visibility, dlqURL)

	// 3. Jobs.
	sqsClient := sqs.NewFromConfig(sqsCfg)
	campaign := "demo-" + time.Now().UTC().Format("20060102T150405Z")
	if err := enqueue(ctx, sqsClient, queueURL, campaign, jobs); err != nil {
		return err
	}

	// 4. The worker.
	logFile, err := os.CreateTemp("", "resetq-demo-*.log")
	if err != nil {
		return fmt.Errorf("create worker log file: %w", err)
	}
	defer logFile.Close()
	wallTime, err := runWorker(ctx, bin, queueURL, srv.URL, proxy.URL, logFile, workerTimeout)
	if err != nil {
		if tail := tailFile(logFile.Name(), 15); tail != "" && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "last lines of the worker log %s:\n%s\n", logFile.Name(), tail)
		}
		return err
	}

	// 5. Verify from the emulator's state.
	err = verify(ctx, verifyInput{
		jobs: jobs, sqs: sqsClient, queueURL: queueURL, dlqURL: dlqURL, campaign: campaign,
		throttled: proxy.Stats().Throttled,
		logPath:   logFile.Name(), workerTime: wallTime, start: start,
	})
	if err != nil {
		return err
	}

	// 6. Part 2: the daily email limit mid-campaign, and the attacker
	// during its wait.
	if err := emailLimitPart(ctx, leakInput{bin: bin, motoURL: srv.URL, proxy: proxy, timeout: workerTimeout, start: start}); err != nil {
		return err
	}
	// 7. Part 3: one campaign across two accounts.
	if err := accountsPart(ctx, bin, srv.URL, workerTimeout); err != nil {
		return err
	}
	fmt.Printf("\ndemo done in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// isolateFromShell drops AWS_* and RESETQ_* variables inherited from the
// user's shell (a profile, an endpoint, FIPS settings or a RESETQ_RATE would
// redirect or change the run) and keeps ~/.aws out, for this process and the
// worker alike. Only the names are printed, never the values.
func isolateFromShell() {
	var dropped []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "RESETQ_") {
			dropped = append(dropped, name)
			os.Unsetenv(name)
		}
	}
	if len(dropped) > 0 {
		sort.Strings(dropped)
		fmt.Printf("note: ignoring %s from your environment\n", strings.Join(dropped, ", "))
	}
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// createFixtures creates the pools and their users directly in moto (not
// through the proxy) and returns the jobs to enqueue, one per user plus
// missing users and malformed bodies.
func createFixtures(ctx context.Context, motoURL string) ([]*demoJob, error) {
	var jobs []*demoJob
	add := func(kind jobKind, p *poolPlan, user, body string) {
		jobs = append(jobs, &demoJob{id: fmt.Sprintf("job-%03d", len(jobs)+1), kind: kind, pool: p, user: user, body: body})
	}
	type userSpec struct {
		pool *poolPlan
		name string
		kind jobKind
	}
	var users []userSpec
	for _, p := range plans {
		cfg, err := moto.Config(ctx, motoURL, p.region)
		if err != nil {
			return nil, err
		}
		p.cfg = cfg
		if p.poolID, err = moto.CreatePool(ctx, cfg, "resetq-demo-"+p.region); err != nil {
			return nil, err
		}
		for _, g := range []struct {
			kind   jobKind
			n      int
			prefix string
		}{
			{kindConfirmed, p.confirmed, "confirmed"},
			{kindNoContact, p.noContact, "nocontact"},
			{kindInvited, p.invited, "invited"},
			{kindDisabled, p.disabled, "disabled"},
			{kindMissing, p.missing, "ghost"},
		} {
			for i := 1; i <= g.n; i++ {
				name := fmt.Sprintf("%s-%03d", g.prefix, i)
				add(g.kind, p, name, jobBody(p.poolID, name))
				if g.kind != kindMissing {
					users = append(users, userSpec{p, name, g.kind})
				}
			}
		}
	}
	anyPool := plans[0].poolID
	add(kindMalformed, nil, "", "reset alice please")                                                   // not JSON
	add(kindMalformed, nil, "", `{"UserPoolId":"`+anyPool+`","Username":"confirmed-001","Force":true}`) // unknown field
	add(kindMalformed, nil, "", `{"UserPoolId":"Ab12Cd34","Username":"confirmed-001"}`)                 // no Region prefix
	add(kindMalformed, nil, "", `{"UserPoolId":"`+anyPool+`","Username":1001}`)                         // number as Username

	t0 := time.Now()
	err := parallel(ctx, 8, len(users), func(ctx context.Context, i int) error {
		u := users[i]
		if u.kind == kindInvited {
			return moto.CreateInvited(ctx, u.pool.cfg, u.pool.poolID, u.name, tempPassword)
		}
		return moto.CreateUser(ctx, u.pool.cfg, u.pool.poolID, u.name, stateOfKind[u.kind])
	})
	if err != nil {
		return nil, err
	}
	for _, p := range plans {
		fmt.Printf("user pool     %s: %d confirmed, %d without verified contact, %d invited, %d disabled\n",
			p.poolID, p.confirmed, p.noContact, p.invited, p.disabled)
	}
	fmt.Printf("              %d users created in %.1fs\n", len(users), time.Since(t0).Seconds())
	return jobs, nil
}

// jobBody is exactly the AdminResetUserPassword request JSON.
func jobBody(poolID, user string) string {
	return job.MustBody(poolID, user)
}

// enqueue sends the jobs in batches of 10 and checks every entry.
func enqueue(ctx context.Context, client *sqs.Client, queueURL, campaign string, jobs []*demoJob) error {
	t0 := time.Now()
	for start := 0; start < len(jobs); start += 10 {
		batch := jobs[start:min(start+10, len(jobs))]
		entries := make([]sqstypes.SendMessageBatchRequestEntry, len(batch))
		for i, j := range batch {
			entries[i] = sqstypes.SendMessageBatchRequestEntry{
				Id:          aws.String(strconv.Itoa(i)),
				MessageBody: aws.String(j.body),
				MessageAttributes: map[string]sqstypes.MessageAttributeValue{
					job.AttrCampaign: {DataType: aws.String("String"), StringValue: aws.String(campaign)},
					attrJob:          {DataType: aws.String("String"), StringValue: aws.String(j.id)},
				},
			}
		}
		out, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
		if err != nil {
			return fmt.Errorf("enqueue jobs %d-%d: %w", start+1, start+len(batch), err)
		}
		if len(out.Failed) > 0 {
			f := out.Failed[0]
			return fmt.Errorf("enqueue jobs %d-%d: %d entries failed, first: %s %s",
				start+1, start+len(batch), len(out.Failed), aws.ToString(f.Code), aws.ToString(f.Message))
		}
		if len(out.Successful) != len(batch) {
			return fmt.Errorf("enqueue jobs %d-%d: %d of %d entries confirmed", start+1, start+len(batch), len(out.Successful), len(batch))
		}
	}
	counts := map[jobKind]int{}
	for _, j := range jobs {
		counts[j.kind]++
	}
	var parts []string
	for k := kindConfirmed; k <= kindMalformed; k++ {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Printf("enqueued      %d jobs in %.1fs, campaign %s\n              (%s)\n",
		len(jobs), time.Since(t0).Seconds(), campaign, strings.Join(parts, ", "))
	return nil
}

// runWorker runs `resetq work` until it exits by itself (the queue idle for
// idleExit), printing progress from its /metrics every 2 s. It returns the
// worker's wall time and fails unless the worker exits 0.
func runWorker(ctx context.Context, bin, queueURL, motoURL, proxyURL string, logFile *os.File, limit time.Duration) (time.Duration, error) {
	var pools []string
	for _, p := range plans {
		pools = append(pools, p.poolID)
	}
	args := []string{"work", "--queue-url", queueURL, "--exit-when-idle", idleExit.String(),
		"--pool", strings.Join(pools, ","), "--global-sign-out", "--reinvite", "--unreachable", "disable",
		"--log-format", "text", "--metrics-addr", "127.0.0.1:0"}
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := resetqCmd(runCtx, bin, args, motoURL, proxyURL)
	cmd.Stdout, cmd.Stderr = logFile, logFile

	fmt.Printf("worker        %s %s\n", bin, strings.Join(args, " "))
	fmt.Printf("worker log    %s\n", logFile.Name())
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { ticker(done, t0, metricsURL(logFile.Name())) })
	err := cmd.Wait()
	wall := time.Since(t0)
	close(done)
	wg.Wait()
	switch {
	case ctx.Err() != nil:
		return wall, fmt.Errorf("worker stopped early: %s", exitText(err))
	case runCtx.Err() != nil:
		return wall, fmt.Errorf("worker still running after %s; stopped it: %s", limit, exitText(err))
	case err != nil:
		return wall, fmt.Errorf("worker failed: %w (log: %s)", err, logFile.Name())
	}
	fmt.Printf("worker        exited 0 after %.1fs\n", wall.Seconds())
	return wall, nil
}

// resetqCmd makes a command running the resetq binary against the
// emulator: test credentials, SQS straight to moto, Cognito through the
// quota proxy. When ctx ends (Ctrl-C, a timeout) it asks for a graceful
// stop (SIGINT), and kills the process 10 s later.
func resetqCmd(ctx context.Context, bin string, args []string, motoURL, proxyURL string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"AWS_ENDPOINT_URL="+motoURL,
		"AWS_ENDPOINT_URL_SQS="+motoURL,
		"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER="+proxyURL,
	)
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// ticker prints one progress line from the worker's metrics every 2 s.
func ticker(done <-chan struct{}, t0 time.Time, url func() string) {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		m, err := scrape(client, url())
		if err != nil {
			continue // not serving yet, or already gone
		}
		fmt.Printf("  [%4.1fs] signed out %3.0f   reset %3.0f   re-invited %2.0f   dead-lettered %2.0f   retried %2.0f   throttled %2.0f   in flight %2.0f\n",
			time.Since(t0).Seconds(), m[`resetq_steps_total{step="signed_out"}`], m[`resetq_jobs_total{outcome="reset"}`],
			m[`resetq_jobs_total{outcome="reinvited"}`], m[`resetq_jobs_total{outcome="dead_lettered"}`],
			m[`resetq_jobs_total{outcome="retried"}`], m["resetq_throttles_total"], m["resetq_inflight_jobs"])
	}
}

// scrape reads the Prometheus text exposition format: one "series value"
// per line. Series without labels of the same name are also summed under
// the bare metric name.
func scrape(client *http.Client, url string) (map[string]float64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		m[series] = v
		if name, _, ok := strings.Cut(series, "{"); ok {
			m[name] += v
		}
	}
	return m, sc.Err()
}

// metricsURL returns a function that gives the /metrics URL of the worker
// writing log, once it has said where it serves them, and "" until then.
// The worker binds --metrics-addr 127.0.0.1:0, a port the kernel picks:
// a port picked here could be taken before the worker binds it.
func metricsURL(log string) func() string {
	var url string
	return func() string {
		if url == "" {
			if b, err := os.ReadFile(log); err == nil {
				if addr, ok := localserver.MetricsAddr(b); ok {
					url = "http://" + addr + "/metrics"
				}
			}
		}
		return url
	}
}

// parallel calls fn(i) for i in [0,n) on at most workers goroutines and
// returns the first error.
func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
