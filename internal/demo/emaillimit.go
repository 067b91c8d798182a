package main

// Part 2 of the demo, issue 21's scenario: the passwords of a pool's users
// leaked, and an attacker signed in with each of them before the
// campaign. The pool sends codes with Cognito's default email, whose daily
// limit (50 emails) the quota proxy plays hitting after a few codes. With
// `resetq work --incident` each job whose code must wait kills the old
// password at once and signs the user out after it. Some seconds into the
// wait the attacker tries every leaked password and every refresh token he
// holds; then the limit lifts, the worker's probe finds it gone, and the
// codes go out. Everything the demo reports is read from moto (through
// the attacker's own calls) or counted by the proxy.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/moto"
)

const (
	leakedUsers      = 20
	leakRegion       = "us-east-1"
	leakPrefix       = "leaked-"
	codesBeforeLimit = 5                // codes the daily email limit still lets out
	emailProbe       = 15 * time.Second // --email-limit-probe
	attackAfter      = 10 * time.Second // the attacker's moment, after the limit hit
	progressEvery    = 5 * time.Second
)

// emailLimitMessage is what Cognito answers AdminResetUserPassword once its
// default email sender has sent the day's 50 emails.
const emailLimitMessage = "Exceeded daily email limit for the operation or the account. If a higher limit is required, " +
	"please configure your user pool to use your own Amazon SES configuration for sending email."

type leakInput struct {
	bin, motoURL string
	proxy        *awsproxy.Server
	timeout      time.Duration
	start        time.Time
}

// victim is a user whose password leaked.
type victim struct {
	name   string
	tokens []string // refresh tokens the attacker holds
}

type leakPool struct {
	cfg        aws.Config
	id, client string
	victims    []*victim
	footnoted  bool // the note on motoChallenge was printed
}

// attempt is what the attacker got from one round of tries.
type attempt struct {
	tries, refused int
	byCode         map[string]int // refusals by error code
	example        string         // one refusal: "Code: message"
	in             []string       // users the leaked password signed in as
	tokens         int            // refresh tokens tried
	tokensRefused  int
	tokenCodes     map[string]int // token refusals by error code
	live           []string       // "user#n" of tokens that still refresh
	statuses       map[string]int // users by status, read just before the sign-in
	killed         int            // CONFIRMED users whose leaked password is refused: killed
}

// motoChallenge is how moto answers the old password of a RESET_REQUIRED
// user: a NEW_PASSWORD_REQUIRED challenge and no tokens. Cognito
// deactivates the password at the reset and answers
// PasswordResetRequiredException: only the emailed code sets a new one.
const motoChallenge = "NEW_PASSWORD_REQUIRED challenge without tokens*"

// footnote explains motoChallenge the first time a's counts show it.
func (lp *leakPool) footnote(a attempt) string {
	if a.byCode[motoChallenge] == 0 || lp.footnoted {
		return ""
	}
	lp.footnoted = true
	return "\n              * moto's answer to a RESET_REQUIRED user's old password; Cognito deactivates the password at the reset" +
		"\n                (PasswordResetRequiredException: only the emailed code sets a new one). The attacker does not" +
		"\n                answer moto's challenge, which would let him set a password that Cognito never would."
}

func (a attempt) codes() string      { return counts(a.byCode) }
func (a attempt) statusText() string { return counts(a.statuses) }
func (a attempt) tokenText() string  { return counts(a.tokenCodes) }

// some lists the first few of names.
func some(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}

// counts is "2 a, 1 b": m's counts in the order of their names.
func counts(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

// emailLimitPart runs part 2 and fails if the attacker gets in at any
// point, a token he holds still refreshes, or a user is not reset.
func emailLimitPart(ctx context.Context, in leakInput) error {
	fmt.Printf("\n== part 2: Cognito's daily email limit hits mid-campaign; resetq work --incident holds the attacker out ==\n")
	lp, err := createLeakPool(ctx, in.motoURL)
	if err != nil {
		return err
	}
	before, err := lp.attack(ctx)
	if err != nil {
		return err
	}
	if len(before.in) != leakedUsers {
		return fmt.Errorf("before the campaign the attacker signed in as %d of %d users (%s)", len(before.in), leakedUsers, before.codes())
	}
	for _, v := range lp.victims {
		if err := moto.Refresh(ctx, lp.cfg, lp.id, lp.client, v.tokens[0]); err != nil {
			return fmt.Errorf("before the campaign, %s's refresh token: %w", v.name, err)
		}
	}
	fmt.Printf("attacker      signed in as %d of %d users with their leaked passwords before the campaign; keeps %d refresh tokens (each refreshes)\n",
		len(before.in), leakedUsers, len(before.in))

	sqsCfg, err := moto.Config(ctx, in.motoURL, moto.Region)
	if err != nil {
		return err
	}
	queueURL, dlqURL, err := moto.CreateQueues(ctx, sqsCfg, "resetq-demo-leaked", maxReceiveCount, visibility)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "resetq-demo-leaked-")
	if err != nil {
		return fmt.Errorf("create a directory for the signing key: %w", err)
	}
	defer os.RemoveAll(dir)
	keyFile, usersFile, err := lp.files(dir)
	if err != nil {
		return err
	}
	campaign := "demo-leaked-" + time.Now().UTC().Format("20060102T150405Z")
	if err := enqueueSigned(ctx, in, lp, queueURL, keyFile, usersFile, campaign); err != nil {
		return err
	}

	// The email limit: a few codes go out, then every reset of these users
	// is refused as Cognito refuses it, until the demo lifts it.
	match := `"Username":"` + leakPrefix
	pass := in.proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", BodyContains: match,
		Count: codesBeforeLimit, Delay: time.Millisecond})
	limit := in.proxy.AddFault(awsproxy.Fault{Operation: "AdminResetUserPassword", BodyContains: match,
		ErrorCode: "LimitExceededException", Message: emailLimitMessage})
	defer in.proxy.RemoveFault(pass)
	defer in.proxy.RemoveFault(limit)
	fmt.Printf("email limit   the proxy lets %d codes out, then answers LimitExceededException (%.45s...) until lifted\n",
		codesBeforeLimit, emailLimitMessage)

	logFile, err := os.CreateTemp("", "resetq-demo-leaked-*.log")
	if err != nil {
		return fmt.Errorf("create worker log file: %w", err)
	}
	defer logFile.Close()
	args := []string{"work", "--incident", "--signing-key-file", keyFile, "--queue-url", queueURL, "--pool", lp.id,
		"--email-limit-probe", emailProbe.String(), "--exit-when-idle", idleExit.String(),
		"--log-format", "text", "--metrics-addr", "127.0.0.1:0"}
	runCtx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	cmd := resetqCmd(runCtx, in.bin, args, in.motoURL, in.proxy.URL)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	fmt.Printf("worker        %s %s\n", in.bin, strings.Join(args, " "))
	fmt.Printf("worker log    %s\n", logFile.Name())
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", in.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var problems []string
	during, waitErr, err := lp.watch(runCtx, t0, metricsURL(logFile.Name()), exited, func() { in.proxy.RemoveFault(limit) })
	if err != nil {
		cancel()
		<-exited
		return err
	}
	wall := time.Since(t0)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("worker stopped early: %s", exitText(waitErr))
	case runCtx.Err() != nil:
		waitErr = fmt.Errorf("worker still running after %s; stopped it: %s", in.timeout, exitText(waitErr))
	case waitErr != nil:
		waitErr = fmt.Errorf("worker failed: %w (log: %s)", waitErr, logFile.Name())
	}
	if waitErr != nil {
		if tail := tailFile(logFile.Name(), 15); tail != "" {
			fmt.Fprintf(os.Stderr, "last lines of the worker log %s:\n%s\n", logFile.Name(), tail)
		}
		return waitErr
	}
	fmt.Printf("worker        exited 0 after %.1fs\n", wall.Seconds())
	if during == nil {
		return errors.New("the attacker never got his moment: the worker exited before the email limit's wait")
	}

	// After the campaign, from moto.
	fmt.Println("\nchecking the emulator's state...")
	after, err := lp.attack(ctx)
	if err != nil {
		return err
	}
	src, err := depth(ctx, sqs.NewFromConfig(sqsCfg), queueURL)
	if err != nil {
		return err
	}
	dlq, err := depth(ctx, sqs.NewFromConfig(sqsCfg), dlqURL)
	if err != nil {
		return err
	}
	sent := during.statuses["RESET_REQUIRED"] // codes out before the limit, by moto
	fmt.Println("\nsummary, part 2 (from moto's state, the attacker's own calls and the proxy's count)")
	fmt.Printf("  email limit           hit after %d codes; LimitExceededException answered %d reset(s), the worker held the other jobs itself\n",
		sent, in.proxy.Affected(limit))
	fmt.Printf("  during the wait       %d RESET_REQUIRED (code sent), %d CONFIRMED with the leaked password refused (killed), %d users in all\n",
		sent, during.killed, during.tries)
	fmt.Printf("    leaked passwords    %d of %d sign-ins refused (%s)%s\n", during.refused, during.tries, during.codes(), lp.footnote(*during))
	fmt.Printf("    his refresh tokens  %d of %d refused (%s)\n", during.tokensRefused, during.tokens, during.tokenText())
	fmt.Printf("  users RESET_REQUIRED  %d of %d (%s)\n", after.statuses["RESET_REQUIRED"], leakedUsers, after.statusText())
	fmt.Printf("  attacker's tokens     %d of %d refresh tokens he took still refresh (%s)\n", len(after.live), after.tokens, after.tokenText())
	fmt.Printf("  leaked passwords      %d of %d sign in after the campaign (%s)%s\n", len(after.in), after.tries, after.codes(), lp.footnote(after))
	fmt.Printf("  queues                source %d visible, %d in flight, %d delayed; DLQ %d\n",
		src.visible, src.inFlight, src.delayed, dlq.visible+dlq.inFlight+dlq.delayed)
	fmt.Printf("  worker wall time      %.1fs (--email-limit-probe %s, --exit-when-idle %s)\n", wall.Seconds(), emailProbe, idleExit)
	fmt.Printf("  elapsed               %.1fs in all, both parts\n", time.Since(in.start).Seconds())

	if len(during.in) > 0 {
		problems = append(problems, fmt.Sprintf("THE ATTACKER GOT IN during the email limit's wait: the leaked password signed in as %d user(s): %s",
			len(during.in), some(during.in)))
	}
	if len(during.live) > 0 {
		problems = append(problems, fmt.Sprintf("THE ATTACKER KEPT HIS SESSIONS during the wait: %d refresh token(s) taken before the campaign still refreshed: %s",
			len(during.live), some(during.live)))
	}
	if sent < 1 || sent > codesBeforeLimit {
		problems = append(problems, fmt.Sprintf("the limit did not hit mid-campaign: %d users RESET_REQUIRED during the wait, want 1 to %d",
			sent, codesBeforeLimit))
	}
	if len(after.in) > 0 {
		problems = append(problems, fmt.Sprintf("THE ATTACKER GOT IN after the campaign as %d user(s): %s", len(after.in), some(after.in)))
	}
	if len(after.live) > 0 {
		problems = append(problems, fmt.Sprintf("%d refresh token(s) the attacker took still refresh after the campaign: %s",
			len(after.live), some(after.live)))
	}
	if n := after.statuses["RESET_REQUIRED"]; n != leakedUsers {
		problems = append(problems, fmt.Sprintf("%d of %d users RESET_REQUIRED after the campaign (%s)", n, leakedUsers, after.statusText()))
	}
	if src.visible+src.inFlight+src.delayed != 0 {
		problems = append(problems, fmt.Sprintf("the source queue is not empty: %d visible, %d in flight, %d delayed", src.visible, src.inFlight, src.delayed))
	}
	if n := dlq.visible + dlq.inFlight + dlq.delayed; n != 0 {
		problems = append(problems, fmt.Sprintf("%d message(s) in the DLQ, want none", n))
	}
	if len(problems) > 0 {
		fmt.Println()
		for _, p := range problems {
			fmt.Println("  problem:", p)
		}
		return fmt.Errorf("part 2: %d problem(s) found; see the worker log %s", len(problems), logFile.Name())
	}
	fmt.Println("\nPASS: during the email limit's wait no leaked password signed in and no refresh token refreshed;" +
		"\n      after it every user is RESET_REQUIRED and none of the attacker's refresh tokens refreshes")
	return nil
}

// createLeakPool creates the pool, its users (CONFIRMED, with a verified
// email, the leaked password moto.Password) and an app client, in moto
// directly.
func createLeakPool(ctx context.Context, motoURL string) (*leakPool, error) {
	cfg, err := moto.Config(ctx, motoURL, leakRegion)
	if err != nil {
		return nil, err
	}
	lp := &leakPool{cfg: cfg}
	if lp.id, err = moto.CreatePool(ctx, cfg, "resetq-demo-leaked"); err != nil {
		return nil, err
	}
	for i := 1; i <= leakedUsers; i++ {
		lp.victims = append(lp.victims, &victim{name: fmt.Sprintf("%s%03d", leakPrefix, i)})
	}
	err = parallel(ctx, 8, len(lp.victims), func(ctx context.Context, i int) error {
		return moto.CreateUser(ctx, cfg, lp.id, lp.victims[i].name, moto.Confirmed)
	})
	if err != nil {
		return nil, err
	}
	if lp.client, err = moto.CreateAppClient(ctx, cfg, lp.id); err != nil {
		return nil, err
	}
	fmt.Printf("user pool     %s: %d confirmed users whose passwords leaked; Cognito's default email sends their codes\n",
		lp.id, leakedUsers)
	return lp, nil
}

// attack is one round of the attacker's tries, straight to moto: every
// refresh token he holds, then for each user its status (to tell who
// already got a code) and the leaked password; a refresh token a sign-in
// yields is kept for the next round. The attacker is in when Cognito
// hands him tokens, or accepts the password of a user who is not
// RESET_REQUIRED.
func (lp *leakPool) attack(ctx context.Context) (attempt, error) {
	a := attempt{byCode: map[string]int{}, tokenCodes: map[string]int{}, statuses: map[string]int{}}
	for _, v := range lp.victims {
		for i, tok := range v.tokens {
			a.tokens++
			f, err := fate(moto.Refresh(ctx, lp.cfg, lp.id, lp.client, tok))
			switch {
			case err != nil:
				return a, fmt.Errorf("the attacker's refresh token of %s: %w", v.name, err)
			case f == accepted:
				a.live = append(a.live, v.name+"#"+strconv.Itoa(i+1))
			default:
				a.tokensRefused++
				a.tokenCodes[f]++
			}
		}
	}
	for _, v := range lp.victims {
		st, err := moto.UserStatus(ctx, lp.cfg, lp.id, v.name)
		if err != nil {
			return a, err
		}
		a.statuses[st]++
		a.tries++
		tok, challenge, err := moto.SignIn(ctx, lp.cfg, lp.id, lp.client, v.name, moto.Password)
		var api interface{ ErrorCode() string }
		switch {
		case err == nil && tok != "":
			v.tokens = append(v.tokens, tok)
			a.in = append(a.in, v.name)
		case err == nil && st == "RESET_REQUIRED" && challenge == "NEW_PASSWORD_REQUIRED":
			a.refused++
			a.byCode[motoChallenge]++
		case err == nil:
			a.in = append(a.in, fmt.Sprintf("%s (%s, challenge %s)", v.name, st, challenge))
		case errors.As(err, &api):
			a.refused++
			a.byCode[api.ErrorCode()]++
			if st == "CONFIRMED" && api.ErrorCode() == "NotAuthorizedException" {
				a.killed++
			}
			if a.example == "" {
				a.example = err.Error()
			}
		default:
			return a, fmt.Errorf("the attacker's sign-in as %s: %w", v.name, err)
		}
	}
	return a, nil
}

// files writes a fresh signing key (mode 0600, as the worker demands) and
// the list of usernames for resetq enqueue.
func (lp *leakPool) files(dir string) (keyFile, usersFile string, err error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", "", fmt.Errorf("make a signing key: %w", err)
	}
	keyFile = filepath.Join(dir, "resetq-keys")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write the signing key: %w", err)
	}
	var names strings.Builder
	for _, v := range lp.victims {
		names.WriteString(v.name + "\n")
	}
	usersFile = filepath.Join(dir, "users.txt")
	if err := os.WriteFile(usersFile, []byte(names.String()), 0o600); err != nil {
		return "", "", fmt.Errorf("write the users file: %w", err)
	}
	return keyFile, usersFile, nil
}

// enqueueSigned puts one signed job per user on the queue with the real
// binary, and checks that it says all of them are there.
func enqueueSigned(ctx context.Context, in leakInput, lp *leakPool, queueURL, keyFile, usersFile, campaign string) error {
	args := []string{"enqueue", "--signing-key-file", keyFile, "--queue-url", queueURL, "--pool", lp.id,
		"--from", usersFile, "--campaign", campaign, "--output", "json", "--progress-interval", "0"}
	if err := enqueueCount(ctx, in.bin, args, in.motoURL, in.proxy.URL, leakedUsers); err != nil {
		return err
	}
	fmt.Printf("enqueued      %d signed jobs, campaign %s:\n              %s %s\n", leakedUsers, campaign, in.bin, strings.Join(args, " "))
	return nil
}

// watch follows the worker by its metrics until it exits, and acts on
// the way: once the email limit is reached, it waits attackAfter, lets
// the attacker try, then lifts the limit. It returns the attacker's try
// during the wait (nil if the wait never came) and the worker's exit
// error; err is an attack that could not be made, or ctx's end before
// the worker exited.
func (lp *leakPool) watch(ctx context.Context, t0 time.Time, url func() string, exited <-chan error, lift func()) (during *attempt, exit, err error) {
	var (
		limitAt       time.Time
		lifted        bool
		lastProgress  string
		lastPrinted   time.Time
		client        = &http.Client{Timeout: time.Second}
		tick          = time.NewTicker(250 * time.Millisecond)
		limitGauge    = `resetq_email_limit_reached{account="` + moto.Account + `",region="` + leakRegion + `"}`
		workerLiftLog bool
	)
	defer tick.Stop()
	at := func() string { return fmt.Sprintf("  [%4.1fs]", time.Since(t0).Seconds()) }
	for {
		select {
		case exit := <-exited:
			return during, exit, nil
		case <-tick.C:
		}
		m, err := scrape(client, url())
		if err != nil {
			continue // not serving yet, or already gone
		}
		switch {
		case limitAt.IsZero() && m[limitGauge] == 1:
			limitAt = time.Now()
			fmt.Printf("%s email limit reached (resetq_email_limit_reached 1): the other jobs wait on the queue, one probe every %s\n",
				at(), emailProbe)
		case !limitAt.IsZero() && during == nil && time.Since(limitAt) >= attackAfter:
			fmt.Printf("%s the attacker, %s into the wait, tries the %d leaked passwords and every refresh token he holds\n",
				at(), attackAfter, len(lp.victims))
			a, err := lp.attack(ctx)
			if err != nil {
				return nil, nil, err
			}
			during = &a
			fmt.Printf("%s refresh tokens taken before the campaign: %d of %d refused (%s)\n",
				at(), a.tokensRefused, a.tokens, a.tokenText())
			fmt.Printf("%s leaked passwords: %d of %d sign-ins refused (%s); users %s\n",
				at(), a.refused, a.tries, a.codes(), a.statusText())
			if a.example != "" {
				fmt.Printf("              e.g. %s\n", a.example)
			}
			if f := lp.footnote(a); f != "" {
				fmt.Println(f[1:])
			}
			if len(a.in)+len(a.live) > 0 {
				fmt.Printf("%s THE ATTACKER IS IN: the leaked password signed in as %d user(s), %d refresh token(s) refreshed\n",
					at(), len(a.in), len(a.live))
			}
			lift()
			lifted = true
			fmt.Printf("%s email limit lifted at the proxy (a new day, or the pool moved to Amazon SES); the worker's next probe will find it\n", at())
		case lifted && !workerLiftLog && m[limitGauge] == 0:
			workerLiftLog = true
			fmt.Printf("%s the worker's probe sent a code: limit over (resetq_email_limit_reached 0), the waiting codes go out\n", at())
		}
		progress := fmt.Sprintf("reset %3.0f   passwords killed %3.0f   signed out %3.0f   deferred %3.0f   email limit %.0f",
			m[`resetq_jobs_total{outcome="reset"}`], m[`resetq_steps_total{step="password_killed"}`],
			m[`resetq_steps_total{step="signed_out"}`], m[`resetq_jobs_total{outcome="deferred"}`], m[limitGauge])
		if progress != lastProgress && time.Since(lastPrinted) >= progressEvery {
			lastProgress, lastPrinted = progress, time.Now()
			fmt.Printf("%s %s\n", at(), progress)
		}
	}
}
