package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/resetq/resetq/internal/bench/dynamostub"
	"github.com/resetq/resetq/internal/cognitostub"
	"github.com/resetq/resetq/job"
)

// Scenario 7: one resetq process, one queue, pools in many account-Regions
// (--pool-roles). The Cognito stand-in keeps a quota per account and
// Region, a call's account being the one its access key belongs to: the
// stand-in's STS gives each role credentials that name the role's account.
// Part a: 4 account-Regions, as resetq ships. Part b: the ceiling, with
// --incident and the campaign ledger, stepping the account-Regions up
// until the rate falls under accountsShare of their quotas.
const (
	accountsQuota     = 30            // Cognito's default UserAccountRecovery quota, per account and Region
	accountsRate      = accountsQuota // --rate: the quota, as in scenarios 1 and 6 (nobody else uses it)
	accountsShare     = 0.95          // of the quotas' sum
	accountsThrottled = 0.005         // in each account-Region
	accountsSlots     = 4             // part b's --concurrency per account-Region
	accountsCampaign  = "bench-accounts"
	accountsRole      = "resetq-target"
)

// accountsRegions are the Regions the roles' accounts are used in, in turn.
var accountsRegions = []string{"us-east-1", "eu-west-1"}

// accountRegion is one account-Region of scenario 7: its one pool, and
// the role that reaches it ("": the default credentials).
type accountRegion struct {
	Account string `json:"account"`
	Region  string `json:"region"`
	Pool    string `json:"pool"`
	Role    string `json:"role,omitempty"`
}

// key is the account-Region's quota scope, as the stand-in keys it.
func (a accountRegion) key() string { return cognitostub.ScopeKey(a.Account, a.Region) }

// accountRegions is n account-Regions: the default credentials' account in
// us-east-1, then accounts reached through roles, each in us-east-1 and
// eu-west-1 (100000000001 in both, then 100000000002...), so that an
// account's two Regions are two quotas and one role's credentials.
func accountRegions(n int) []accountRegion {
	out := make([]accountRegion, 0, n)
	for i := range n {
		if i == 0 {
			out = append(out, accountRegion{Account: cognitostub.DefaultAccount, Region: accountsRegions[0],
				Pool: accountsRegions[0] + "_acct00"})
			continue
		}
		account := fmt.Sprintf("1%011d", (i+1)/2)
		region := accountsRegions[(i-1)%len(accountsRegions)]
		out = append(out, accountRegion{Account: account, Region: region, Pool: fmt.Sprintf("%s_acct%02d", region, i),
			Role: "arn:aws:iam::" + account + ":role/" + accountsRole})
	}
	return out
}

// rolesFile is the --pool-roles file of scopes: a line for each pool
// reached through a role.
func rolesFile(scopes []accountRegion) string {
	var b strings.Builder
	b.WriteString("# scenario 7: POOL_ID ROLE_ARN\n")
	for _, s := range scopes {
		if s.Role != "" {
			fmt.Fprintf(&b, "%s %s\n", s.Pool, s.Role)
		}
	}
	return b.String()
}

// accountsBody is the i-th job over scopes: each account-Region in turn,
// so that all have work from the first second.
func accountsBody(scopes []accountRegion) func(int) string {
	return func(i int) string {
		s := scopes[i%len(scopes)]
		return job.MustBody(s.Pool, username(i/len(scopes)))
	}
}

// scopeFigure is one account-Region's part of a run.
type scopeFigure struct {
	accountRegion
	Jobs      int     `json:"jobs"`
	Resets    int     `json:"resets"`
	Calls     int     `json:"calls"`
	Throttles int     `json:"throttles"`
	Throttled float64 `json:"throttled_share"`
	SignOuts  int     `json:"sign_outs"`
	Rate      float64 `json:"rate_per_second"` // (resets − 1) / (last − first)
	Share     float64 `json:"rate_share"`      // Rate / the quota
	Target    string  `json:"target"`
}

// accounts is scenario 7.
func (h *harness) accounts(ctx context.Context) {
	h.w.stub.SetQuota(accountsQuota)
	defer h.w.stub.SetQuota(0)
	h.w.campaign = accountsCampaign // the role sessions are resetq-bench-accounts; the ledger needs one
	defer func() { h.w.env, h.w.campaign, h.w.body = nil, "", nil }()
	h.note(fmt.Sprintf("Scenario 7: one resetq process and one queue; each account-Region has a pool and a quota of %d/s "+
		"of its own in the stand-in, which tells a call's account by its access key (its STS gives each role's "+
		"credentials keys naming the role's account; the default credentials are %s's). --rate %d, the quota: "+
		"nobody else uses it here.", accountsQuota, cognitostub.DefaultAccount, accountsRate))

	if n := h.p.accountsShipped; n > 0 {
		a := &row{Scenario: "7a accounts", Contender: fmt.Sprintf("resetq, %d account-Regions (%d by --pool-roles)", n, n-1),
			showScopes: true}
		h.runAccounts(ctx, a, accountRegions(n), nil)
		a.judge(judgeAccounts)
		h.add(a)
	}

	if len(h.p.accountsSteps) == 0 || ctx.Err() != nil {
		return
	}
	dyn, err := dynamostub.Start(ledgerLatency)
	if err != nil {
		h.add(&row{Scenario: "7b ceiling", Contender: contResetq, Error: err.Error(), Target: "error"})
		return
	}
	defer dyn.Close()
	h.w.env = []string{"AWS_ENDPOINT_URL_DYNAMODB=" + dyn.URL}
	for _, n := range h.p.accountsSteps {
		if ctx.Err() != nil {
			return
		}
		table := "bench-accounts-" + strconv.FormatInt(h.w.seq.Add(1), 10)
		conc := strconv.Itoa(max(16, accountsSlots*n))
		r := &row{Scenario: "7b ceiling", LedgerTable: table,
			Contender: fmt.Sprintf("resetq --incident --ledger-table --concurrency %s, %d account-Regions",
				lastFlag(append([]string{"--concurrency", conc}, h.p.resetqArgs...), "--concurrency"), n)}
		dyn.ResetStats()
		// --sign-out-rate at the quota: the stand-in does not limit
		// sign-outs (UserUpdate), so the resets' quota is what binds.
		h.runAccounts(ctx, r, accountRegions(n), dyn, "--incident", "--sign-out-rate", strconv.Itoa(accountsQuota),
			"--concurrency", conc, "--ledger-table", table)
		r.ledgerStats(dyn.Stats(), dyn.Items(table))
		if r.Error == "" && r.SignOuts < r.Resets {
			r.Error = fmt.Sprintf("%d sign-outs for %d resets: --incident signs every user out", r.SignOuts, r.Resets)
		}
		r.judge(judgeAccounts)
		h.add(r)
		if r.Error != "" || r.RateShare < accountsShare {
			h.note(fmt.Sprintf("Scenario 7b stops at %d account-Regions: %.3f of their quotas (under %.2f) or an error.", n, r.RateShare, accountsShare))
			return
		}
	}
}

// lastFlag is the value of the last name in args ("--name V" or
// "--name=V"; "" if none): the one resetq takes.
func lastFlag(args []string, name string) string {
	v := ""
	for i, a := range args {
		switch {
		case a == name && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, name+"="):
			v = strings.TrimPrefix(a, name+"=")
		}
	}
	return v
}

// judgeAccounts: the rate at least accountsShare of the quotas' sum, and
// no account-Region throttled more than accountsThrottled.
func judgeAccounts(r *row) []string {
	misses := atLeast("rate", r.RateShare, accountsShare, "of N × Q")
	for _, s := range r.ScopeFigures {
		if s.Throttled > accountsThrottled {
			misses = append(misses, atMost(s.key()+" throttled", s.Throttled, accountsThrottled)...)
		}
	}
	return misses
}

// runAccounts runs one resetq over a queue of the profile's jobs for each
// of scopes, and fills r's account-Regions and what the machine did.
func (h *harness) runAccounts(ctx context.Context, r *row, scopes []accountRegion, dyn *dynamostub.Server, args ...string) {
	n := len(scopes)
	r.Scopes, r.Jobs, r.Quota = n, n*h.p.accountsJobs, n*accountsQuota
	r.Available = float64(r.Quota)
	path := filepath.Join(h.w.dir, "pool-roles-"+strconv.FormatInt(h.w.seq.Add(1), 10))
	if err := os.WriteFile(path, []byte(rolesFile(scopes)), 0o644); err != nil {
		r.Error = err.Error()
		return
	}
	h.w.body = accountsBody(scopes)
	var use machineUse
	h.around = func() func() {
		use.begin(h.w.stub, dyn)
		return func() { use.end(h.w.stub, dyn) }
	}
	defer func() { h.around = nil }()
	h.runResetq(ctx, r, 1, append([]string{"--pool-roles", path, "--rate", strconv.Itoa(accountsRate)}, args...)...)
	st := h.w.stub.Stats()
	r.SignOuts, r.AssumeRoles, r.Identities = st.SignOuts, st.AssumeRoles, st.Identities
	r.accountFigures(scopes, h.w.stub.ScopeStats(), h.p.accountsJobs)
	use.fill(r)
}

// accountFigures fills r's per account-Region figures from the stand-in's
// counts, each account-Region having jobs jobs; a run whose resets landed
// in another account-Region than their pool's is an error.
func (r *row) accountFigures(scopes []accountRegion, counts map[string]cognitostub.ScopeStats, jobs int) {
	var wrong []string
	r.ScopeFigures = nil
	for _, s := range scopes {
		c := counts[s.key()]
		f := scopeFigure{accountRegion: s, Jobs: jobs, Resets: c.Resets, Calls: c.Calls, Throttles: c.Throttles,
			Throttled: c.ThrottledShare(), SignOuts: c.SignOuts}
		if span := c.LastReset.Sub(c.FirstReset).Seconds(); c.Resets > 1 && span > 0 {
			f.Rate = float64(c.Resets-1) / span
			f.Share = f.Rate / accountsQuota
		}
		f.Target = "met"
		if m := atMost("throttled", f.Throttled, accountsThrottled); m != nil {
			f.Target = "missed: " + m[0]
		}
		if c.Resets != jobs {
			wrong = append(wrong, fmt.Sprintf("%s: %d resets of %d", s.key(), c.Resets, jobs))
		}
		r.ScopeFigures = append(r.ScopeFigures, f)
		if r.LowestShare == 0 || f.Share < r.LowestShare {
			r.LowestShare, r.LowestScope = f.Share, s.key()
		}
		if r.WorstThrottled == 0 || f.Throttled > r.WorstThrottled {
			r.WorstThrottled, r.WorstScope = f.Throttled, s.key()
		}
	}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if !slices.ContainsFunc(scopes, func(s accountRegion) bool { return s.key() == k }) && counts[k].Calls+counts[k].SignOuts > 0 {
			wrong = append(wrong, k+": calls, and no pool is there")
		}
	}
	if len(wrong) > 0 && r.Error == "" {
		r.Error = "calls in the wrong account-Region: " + strings.Join(wrong, "; ")
	}
}

// machineUse is what the machine did while resetq ran: the harness's own
// CPU (the stand-ins of Cognito, STS and DynamoDB and the SQS proxy run in
// it), fauxqs's, all CPUs' busy share (the rest of it is other processes':
// the machine may be shared), and the connections the stand-ins accepted.
type machineUse struct {
	at             time.Time
	wall           time.Duration
	self, fauxqs   time.Duration
	stat           cpuStat
	busy           float64
	cog, dyn       int64
	fauxqsPID      int
	fauxqsMeasured bool
}

func (m *machineUse) begin(stub *cognitostub.Server, dyn *dynamostub.Server) {
	m.at, m.self, m.stat = time.Now(), selfCPU(), readCPUStat()
	m.fauxqsPID = childPID("node")
	m.fauxqs, m.fauxqsMeasured = procCPU(m.fauxqsPID)
	m.cog = stub.Conns()
	if dyn != nil {
		m.dyn = dyn.Conns()
	}
}

func (m *machineUse) end(stub *cognitostub.Server, dyn *dynamostub.Server) {
	m.wall = time.Since(m.at)
	m.self = selfCPU() - m.self
	f, ok := procCPU(m.fauxqsPID)
	m.fauxqs, m.fauxqsMeasured = f-m.fauxqs, ok && m.fauxqsMeasured
	m.busy = readCPUStat().busySince(m.stat)
	m.cog = stub.Conns() - m.cog
	if dyn != nil {
		m.dyn = dyn.Conns() - m.dyn
	}
}

// fill puts the figures in r.
func (m *machineUse) fill(r *row) {
	if m.wall <= 0 {
		return
	}
	w := m.wall.Seconds()
	r.ProcessSeconds = w
	r.ResetqCPUShare = r.CPUSeconds / w
	r.HarnessCPUShare = m.self.Seconds() / w
	if m.fauxqsMeasured {
		r.FauxqsCPUShare = m.fauxqs.Seconds() / w
	}
	r.MachineBusy = m.busy
	r.OthersCPUs = max(0, m.busy*float64(runtime.NumCPU())-r.ResetqCPUShare-r.HarnessCPUShare-r.FauxqsCPUShare)
	r.CognitoConns, r.DynamoConns = m.cog, m.dyn
	if r.Resets > 0 {
		r.CPUPerJobMS = r.CPUSeconds / float64(r.Resets) * 1000
	}
}

// selfCPU is the harness's user + system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// clockTicks is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTicks = 100

// childPID is the first of the harness's child processes named comm (0:
// none): fauxqs runs as node.
func childPID(comm string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, ok := procStat(pid)
		if ok && f.comm == comm && f.ppid == self {
			return pid
		}
	}
	return 0
}

// procCPU is a process's user + system CPU time (false if it cannot be read).
func procCPU(pid int) (time.Duration, bool) {
	if pid <= 0 {
		return 0, false
	}
	f, ok := procStat(pid)
	return f.cpu, ok
}

type statFields struct {
	comm string
	ppid int
	cpu  time.Duration
}

// procStat reads /proc/PID/stat: comm, ppid, utime + stime.
func procStat(pid int) (statFields, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return statFields{}, false
	}
	return parseStat(string(b))
}

// parseStat reads a /proc/PID/stat line; comm is between the first "("
// and the last ")", and may hold spaces.
func parseStat(s string) (statFields, bool) {
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return statFields{}, false
	}
	rest := strings.Fields(s[closing+1:]) // state ppid pgrp ... utime(14th of the line) stime
	if len(rest) < 13 {
		return statFields{}, false
	}
	ppid, err1 := strconv.Atoi(rest[1])
	ut, err2 := strconv.ParseInt(rest[11], 10, 64)
	st, err3 := strconv.ParseInt(rest[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return statFields{}, false
	}
	return statFields{comm: s[open+1 : closing], ppid: ppid,
		cpu: time.Duration(ut+st) * time.Second / clockTicks}, true
}

// cpuStat is /proc/stat's first line: all CPUs' time, and how much of it
// idle (idle + iowait), in ticks.
type cpuStat struct{ total, idle int64 }

func readCPUStat() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return parseCPUStat(string(line))
}

func parseCPUStat(line string) cpuStat {
	sc := bufio.NewScanner(strings.NewReader(line))
	sc.Split(bufio.ScanWords)
	var c cpuStat
	for i := 0; sc.Scan(); i++ {
		if i == 0 {
			if sc.Text() != "cpu" {
				return cpuStat{}
			}
			continue
		}
		v, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			return cpuStat{}
		}
		if i > 8 { // guest and guest_nice are in user and nice already
			break
		}
		c.total += v
		if i == 4 || i == 5 { // idle, iowait
			c.idle += v
		}
	}
	return c
}

// busySince is the share of all CPUs' time busy since before.
func (c cpuStat) busySince(before cpuStat) float64 {
	total := c.total - before.total
	if total <= 0 {
		return 0
	}
	return 1 - float64(c.idle-before.idle)/float64(total)
}
