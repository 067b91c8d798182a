package main

// Part 3 of the demo, issue 23's scenario: one campaign across two AWS
// accounts. A pool in the default credentials' account and one in
// account 222222222222, reached only through a role (--pool-roles): moto's
// AssumeRole gives credentials that act in the role's account, so the
// default credentials do not even see the second pool. Each account has
// its own quota, so resetq paces each apart: the campaign takes about half
// what one shared limiter would.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/internal/moto"
)

const (
	accountUsers = 25  // users per account
	accountRate  = 5.0 // --rate: calls/s per account and Region
	otherAccount = "222222222222"
	otherRole    = "arn:aws:iam::" + otherAccount + ":role/resetq-target"
)

// demoAccount is one account of part 3: its credentials and its pool.
type demoAccount struct {
	name, account string
	cfg           aws.Config
	pool          string
	users         []string
}

// accountsPart runs part 3 and fails unless every user of both accounts
// is reset, in its own account, with nothing dead-lettered.
func accountsPart(ctx context.Context, bin, motoURL string, timeout time.Duration) error {
	fmt.Printf("\n== part 3: one campaign across two AWS accounts; each account's quota paced apart (--pool-roles) ==\n")
	base, err := moto.Config(ctx, motoURL, moto.Region)
	if err != nil {
		return err
	}
	roles := accounts.Roles{"us-east-1_setup": {ARN: otherRole, Account: otherAccount}}
	other := accounts.New(base, roles).Pool("us-east-1_setup", "demo-setup").Config
	accts := []*demoAccount{
		{name: "default credentials", account: moto.Account, cfg: base},
		{name: "role " + otherRole, account: otherAccount, cfg: other},
	}
	dir, err := os.MkdirTemp("", "resetq-demo-accounts-")
	if err != nil {
		return fmt.Errorf("create a directory for the roles file: %w", err)
	}
	defer os.RemoveAll(dir)
	for i, a := range accts {
		if a.pool, err = moto.CreatePool(ctx, a.cfg, fmt.Sprintf("resetq-demo-account-%d", i+1)); err != nil {
			return err
		}
		for n := 1; n <= accountUsers; n++ {
			a.users = append(a.users, fmt.Sprintf("acct%d-user-%02d", i+1, n))
		}
		if err := parallel(ctx, 8, len(a.users), func(ctx context.Context, n int) error {
			return moto.CreateUser(ctx, a.cfg, a.pool, a.users[n], moto.Confirmed)
		}); err != nil {
			return err
		}
		fmt.Printf("account       %s (%s): pool %s, %d confirmed users\n", a.account, a.name, a.pool, accountUsers)
	}
	_, err = cip.NewFromConfig(base).DescribeUserPool(ctx, &cip.DescribeUserPoolInput{UserPoolId: aws.String(accts[1].pool)})
	if err == nil {
		return fmt.Errorf("the default credentials see account %s's pool: the emulator does not keep accounts apart", otherAccount)
	}
	fmt.Printf("              the default credentials do not see %s (%.60s...)\n", accts[1].pool, err)
	rolesFile := filepath.Join(dir, "pool-roles.txt")
	if err := os.WriteFile(rolesFile, []byte("# pools outside the worker's own account: POOL_ID ROLE_ARN [external-id=ID]\n"+
		accts[1].pool+" "+otherRole+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the roles file: %w", err)
	}
	fmt.Printf("roles file    %s: %s %s\n", rolesFile, accts[1].pool, otherRole)

	sqsCfg, err := moto.Config(ctx, motoURL, moto.Region)
	if err != nil {
		return err
	}
	queueURL, dlqURL, err := moto.CreateQueues(ctx, sqsCfg, "resetq-demo-accounts", maxReceiveCount, visibility)
	if err != nil {
		return err
	}
	campaign := "demo-accounts-" + time.Now().UTC().Format("20060102T150405Z")
	for i, a := range accts {
		usersFile := filepath.Join(dir, fmt.Sprintf("users-%d.txt", i+1))
		if err := os.WriteFile(usersFile, []byte(strings.Join(a.users, "\n")+"\n"), 0o600); err != nil {
			return fmt.Errorf("write the users file: %w", err)
		}
		args := []string{"enqueue", "--queue-url", queueURL, "--pool", a.pool, "--pool-roles", rolesFile,
			"--from", usersFile, "--campaign", campaign, "--output", "json", "--progress-interval", "0"}
		if err := enqueueCount(ctx, bin, args, motoURL, motoURL, accountUsers); err != nil {
			return err
		}
		fmt.Printf("enqueued      %d jobs of account %s: %s %s\n", accountUsers, a.account, bin, strings.Join(args, " "))
	}

	logFile, err := os.CreateTemp("", "resetq-demo-accounts-*.log")
	if err != nil {
		return fmt.Errorf("create worker log file: %w", err)
	}
	defer logFile.Close()
	args := []string{"work", "--queue-url", queueURL, "--pool", accts[0].pool + "," + accts[1].pool, "--pool-roles", rolesFile,
		"--rate", fmt.Sprint(accountRate), "--exit-when-idle", idleExit.String(), "--log-format", "text", "--metrics-addr", "127.0.0.1:0",
		// No real users here: without the harm budget's cautious start
		// (three quarters of --rate, then climbing) each account runs at
		// --rate from its first call, which is what this part compares.
		"--harm-budget", "0"}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Cognito straight to moto: resetq's own limiters are what pace here.
	cmd := resetqCmd(runCtx, bin, args, motoURL, motoURL)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	fmt.Printf("worker        %s %s\n", bin, strings.Join(args, " "))
	limits := &limitWatch{seen: map[string]float64{}}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { limits.follow(done, metricsURL(logFile.Name())) })
	err = cmd.Wait()
	wall := time.Since(t0)
	close(done)
	wg.Wait()
	if err != nil {
		if tail := tailFile(logFile.Name(), 15); tail != "" {
			fmt.Fprintf(os.Stderr, "last lines of the worker log %s:\n%s\n", logFile.Name(), tail)
		}
		return fmt.Errorf("part 3: worker failed: %s", exitText(err))
	}
	spans, err := workSpans(logFile.Name())
	if err != nil {
		return err
	}
	fmt.Printf("worker        exited 0 after %.1fs; first to last reset %.1fs in all: %d users at --rate %g per account (one limiter for both: at least %.1fs)\n",
		wall.Seconds(), spans[""].Seconds(), 2*accountUsers, accountRate, float64(2*accountUsers-1)/accountRate)
	for _, a := range accts {
		fmt.Printf("              account %s: first to last reset %.1fs for its %d users (at --rate %g: at least %.1fs)\n",
			a.account, spans[a.pool].Seconds(), accountUsers, accountRate, float64(accountUsers-1)/accountRate)
	}
	for _, a := range accts {
		fmt.Printf("              resetq_ratelimit_limit{account=%q,region=%q} %g\n", a.account, moto.Region, limits.get(a.account))
	}

	var problems []string
	for _, a := range accts {
		if limits.get(a.account) == 0 {
			problems = append(problems, fmt.Sprintf("no limiter of account %s seen in the worker's metrics", a.account))
		}
		reset := 0
		for _, u := range a.users {
			st, err := moto.UserStatus(ctx, a.cfg, a.pool, u)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s in account %s: %v", u, a.account, err))
			case st == "RESET_REQUIRED":
				reset++
			default:
				problems = append(problems, fmt.Sprintf("%s in account %s is %s, want RESET_REQUIRED", u, a.account, st))
			}
		}
		fmt.Printf("account       %s: %d of %d users RESET_REQUIRED (read with that account's credentials)\n", a.account, reset, accountUsers)
	}
	sqsClient := sqs.NewFromConfig(sqsCfg)
	for _, q := range []string{queueURL, dlqURL} {
		d, err := depth(ctx, sqsClient, q)
		if err != nil {
			return err
		}
		if n := d.visible + d.inFlight + d.delayed; n != 0 {
			problems = append(problems, fmt.Sprintf("%d message(s) left in %s", n, q))
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Println("  problem:", p)
		}
		return fmt.Errorf("part 3: %d problem(s) found; see the worker log %s", len(problems), logFile.Name())
	}
	fmt.Println("\nPASS: one queue, two accounts: every user reset in its own account, the second reached only through its role, each account paced at --rate on its own")
	return nil
}

// enqueueCount runs resetq enqueue (--output json; Cognito at cognitoURL)
// and checks that it put want jobs on the queue.
func enqueueCount(ctx context.Context, bin string, args []string, motoURL, cognitoURL string, want int) error {
	cmd := resetqCmd(ctx, bin, args, motoURL, cognitoURL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("resetq enqueue: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	var sum struct {
		Enqueued int `json:"enqueued"`
	}
	if err := json.Unmarshal(out, &sum); err != nil {
		return fmt.Errorf("resetq enqueue's summary: %w: %s", err, out)
	}
	if sum.Enqueued != want {
		return fmt.Errorf("resetq enqueue put %d of %d jobs on the queue", sum.Enqueued, want)
	}
	return nil
}

// limitWatch keeps the last resetq_ratelimit_limit seen per account.
type limitWatch struct {
	mu   sync.Mutex
	seen map[string]float64
}

func (l *limitWatch) follow(done <-chan struct{}, url func() string) {
	client := &http.Client{Timeout: time.Second}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if m, err := scrape(client, url()); err == nil {
			l.mu.Lock()
			for series, v := range m {
				if rest, ok := strings.CutPrefix(series, `resetq_ratelimit_limit{account="`); ok {
					if acct, _, ok := strings.Cut(rest, `"`); ok {
						l.seen[acct] = v
					}
				}
			}
			l.mu.Unlock()
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func (l *limitWatch) get(account string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[account]
}

// workSpans is the time from the first to the last "job done" line of a
// worker's text log, per pool and ("") in all. The queue hands out the
// jobs roughly in the order they were sent, one pool's after the other's,
// so the pools' spans overlap only in part.
func workSpans(logPath string) (map[string]time.Duration, error) {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return nil, fmt.Errorf("read the worker log: %w", err)
	}
	first, last := map[string]time.Time{}, map[string]time.Time{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, `msg="job done"`) {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		pool := ""
		if _, rest, ok := strings.Cut(line, " pool="); ok {
			pool, _, _ = strings.Cut(rest, " ")
		}
		for _, k := range []string{"", pool} {
			if first[k].IsZero() {
				first[k] = at
			}
			last[k] = at
		}
	}
	spans := map[string]time.Duration{}
	for k := range first {
		spans[k] = last[k].Sub(first[k])
	}
	return spans, nil
}
