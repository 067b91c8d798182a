package preflight

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/usagemetrics"
	"github.com/resetq/resetq/userpool"
)

// Quotas and prices the capacity checks use.
const (
	QuotaService       = "cognito-idp"
	RecoveryQuotaCode  = "L-7D6E8ED3" // the UserAccountRecovery quota in Service Quotas
	SESSandboxPerDay   = 200
	SESSandboxRate     = 1
	SMSDefaultSpendUSD = 1.0
	// SMSPriceUSD is about what one SMS to a US number costs, for an
	// estimate of how many a spend limit pays for.
	SMSPriceUSD = 0.00645
)

// SendQuota is an SES account's sending limits in a Region.
type SendQuota struct {
	Max24h, MaxRate, Sent24h float64
}

// The readers take a scope: a Region, or a job.Scope key for an account
// in a Region.

// SendQuotaReader reads the SES send quota (GetSendQuota): the emails the
// account may send in 24 hours, per second, and has sent in the last 24
// hours.
type SendQuotaReader interface {
	SendQuota(ctx context.Context, scope string) (max24h, maxRate, sent24h float64, err error)
}

// SMSLimitReader reads the SNS monthly SMS spend limit in USD; set is false
// when none is set (the account default applies).
type SMSLimitReader interface {
	MonthlySpendLimit(ctx context.Context, scope string) (usd float64, set bool, err error)
}

// QuotaReader reads a quota's applied value (Service Quotas).
type QuotaReader interface {
	ServiceQuota(ctx context.Context, scope, service, code string) (float64, error)
}

// DefaultUsageWindow is how far back the capacity checks read real users'
// use of the recovery quota.
const DefaultUsageWindow = 7 * 24 * time.Hour

// Capacity reads what preflight's capacity checks need. A nil reader
// skips its checks.
type Capacity struct {
	SES   SendQuotaReader
	SMS   SMSLimitReader
	Quota QuotaReader
	Usage usagemetrics.Reader
	// Window is how far back real users' use is read (default
	// DefaultUsageWindow).
	Window time.Duration
	// Scope is the account and Region of a pool (accounts.Resolver.Scope):
	// quotas and real users' use are per account and Region. Nil: every
	// pool is in one account.
	Scope func(pool string) job.Scope
}

func (c Capacity) withDefaults() Capacity {
	c.Window = cmp.Or(c.Window, DefaultUsageWindow)
	return c
}

// Check runs the capacity checks of pools for a campaign of users resets
// at rate per second per account and Region, at now. The readers are
// given a job.Scope key ("ACCOUNT/REGION", or the Region alone without
// Scope). With several account-Regions it adds the campaign's duration,
// set by the slowest.
func (c Capacity) Check(ctx context.Context, pools []userpool.Pool, users int, rate float64, now time.Time) []Check {
	c = c.withDefaults()
	scopeOf := func(pool string) job.Scope {
		if c.Scope == nil {
			return job.Scope{Region: job.Job{UserPoolID: pool}.Region()}
		}
		return c.Scope(pool)
	}
	var out []Check
	var plans []ScopePlan
	plan := func(s job.Scope) *ScopePlan {
		for i := range plans {
			if plans[i].Scope == s {
				return &plans[i]
			}
		}
		plans = append(plans, ScopePlan{Scope: s, Rate: rate})
		return &plans[len(plans)-1]
	}
	for _, p := range pools {
		s := scopeOf(p.ID)
		if c.SES != nil && slices.Contains(p.Recovery, RecoveryEmail) && p.EmailSendingAccount == "DEVELOPER" {
			region := arnRegion(p.EmailSourceARN, p.Region())
			max24h, maxRate, sent24h, err := c.SES.SendQuota(ctx, job.Scope{Account: s.Account, Region: region}.Key())
			q := SendQuota{Max24h: max24h, MaxRate: maxRate, Sent24h: sent24h}
			out = append(out, CheckSES(p.ID, region, q, err, users, rate)...)
		}
		if c.SMS != nil && slices.Contains(p.Recovery, RecoveryPhone) {
			usd, set, err := c.SMS.MonthlySpendLimit(ctx, s.Key())
			out = append(out, CheckSMS(p.ID, usd, set, err, users))
		}
		pl := plan(s)
		pl.Pools = append(pl.Pools, p.ID)
		pl.Users += p.EstimatedUsers
	}
	for i := range plans {
		pl := &plans[i]
		key := pl.Scope.Key()
		quota, qerr := float64(RecoveryQuota), error(awserr.ErrNoData)
		if c.Quota != nil {
			var v float64
			if v, qerr = c.Quota.ServiceQuota(ctx, key, QuotaService, RecoveryQuotaCode); qerr == nil {
				quota = v
			}
		}
		out = append(out, CheckQuota(key, quota, qerr, rate))
		pl.Rate = min(rate, quota)
		if c.Usage != nil {
			pts, err := c.Usage.Usage(ctx, key, usagemetrics.NewQuery(usagemetrics.RecoveryCategory, usagemetrics.CallCount, c.Window, now))
			out = append(out, CheckUsage(key, pts, err, quota, rate))
			if err == nil || errors.Is(err, awserr.ErrNoData) {
				pl.Rate = min(rate, RecommendedRate(quota, peakPerSecond(pts)))
			}
		}
	}
	if len(plans) > 1 {
		out = append(out, CheckDuration(plans, users))
	}
	return out
}

// ScopePlan is one account-Region of a campaign: its pools, their users
// (DescribeUserPool's estimate) and the rate the campaign may use there.
type ScopePlan struct {
	Scope job.Scope
	Pools []string
	Users int
	Rate  float64
}

// CheckDuration is the campaign's expected duration over several
// account-Regions, each paced at its own rate: the slowest one's. users,
// when above 0, is spread over them as their pools' estimated users are
// (evenly when there is no estimate).
func CheckDuration(plans []ScopePlan, users int) Check {
	total := 0
	for _, p := range plans {
		total += p.Users
	}
	share := func(p ScopePlan) float64 {
		switch {
		case users <= 0:
			return float64(p.Users)
		case total > 0:
			return float64(users) * float64(p.Users) / float64(total)
		}
		return float64(users) / float64(len(plans))
	}
	var slowest ScopePlan
	var longest time.Duration
	var sum float64
	for _, p := range plans {
		n := share(p)
		sum += n
		if p.Rate <= 0 {
			continue
		}
		if d := time.Duration(n / p.Rate * float64(time.Second)).Round(time.Second); d >= longest {
			slowest, longest = p, d
		}
	}
	c := Check{Level: OK, Subject: "campaign", Name: "duration"}
	if sum == 0 {
		c.Message = fmt.Sprintf("%d account-Regions, each paced at its own rate; give --users for the expected duration (the pools estimate no users)", len(plans))
		return c
	}
	c.Message = fmt.Sprintf("about %.0f users over %d account-Regions, each paced at its own rate: about %v, set by the slowest, %s (%.0f users at %g/s)",
		sum, len(plans), longest, slowest.Scope.Key(), share(slowest), slowest.Rate)
	return c
}

// peakPerSecond is the busiest minute's calls per second.
func peakPerSecond(points []usagemetrics.Point) float64 {
	var peak float64
	for _, p := range points {
		peak = max(peak, p.Value)
	}
	return peak / 60
}

// arnRegion is the Region of an ARN, else fallback.
func arnRegion(arn, fallback string) string {
	if parts := strings.SplitN(arn, ":", 5); len(parts) == 5 && parts[3] != "" {
		return parts[3]
	}
	return fallback
}

// unreadable is the check of a reading that failed: a warning that names
// the IAM action when permission was denied.
func unreadable(subject, name string, err error) Check {
	var denied *awserr.DeniedError
	if errors.As(err, &denied) {
		return Check{Level: Warning, Subject: subject, Name: name,
			Message: fmt.Sprintf("not checked: permission %s is missing (grant it to check)", denied.Action)}
	}
	return Check{Level: Warning, Subject: subject, Name: name, Message: fmt.Sprintf("not checked: %v", err)}
}

// CheckSES grades an SES send quota against a campaign: the 24-hour
// quota ("ses quota") and the send rate ("ses rate").
func CheckSES(pool, region string, q SendQuota, err error, users int, rate float64) []Check {
	if err != nil {
		return []Check{unreadable(pool, "ses quota", err)}
	}
	c := func(l Level, name, format string, a ...any) Check {
		return Check{Level: l, Subject: pool, Name: name, Message: fmt.Sprintf(format, a...)}
	}
	left := q.Max24h - q.Sent24h
	head := fmt.Sprintf("SES in %s: %g a day, %g sent in the last 24 h (%g left)", region, q.Max24h, q.Sent24h, left)
	var quota Check
	switch {
	case q.Max24h <= SESSandboxPerDay && q.MaxRate <= SESSandboxRate:
		quota = c(Blocking, "ses quota", "%s: the account is in the SES sandbox (%d a day, %d/s, verified recipients only): request production access", head, SESSandboxPerDay, SESSandboxRate)
	case left <= 0:
		quota = c(Blocking, "ses quota", "%s: nothing left of the 24-hour quota", head)
	case users > 0 && float64(users) > left:
		days := math.Ceil((float64(users) - left) / q.Max24h)
		quota = c(Warning, "ses quota", "%s: %d users need %.0f more day(s) of quota; Cognito sends no code beyond it", head, users, days)
	default:
		quota = c(OK, "ses quota", "%s", head)
	}
	if rate > q.MaxRate {
		return []Check{quota, c(Warning, "ses rate", "SES sends %g emails/s: --rate %g is above it, and Cognito's sends will be throttled", q.MaxRate, rate)}
	}
	return []Check{quota, c(OK, "ses rate", "SES sends %g emails/s, --rate %g is within it", q.MaxRate, rate)}
}

// CheckSMS grades the SNS monthly SMS spend limit against a campaign.
func CheckSMS(pool string, usd float64, set bool, err error, users int) Check {
	const name = "sms spend limit"
	if err != nil {
		return unreadable(pool, name, err)
	}
	c := func(l Level, format string, a ...any) Check {
		return Check{Level: l, Subject: pool, Name: name, Message: fmt.Sprintf(format, a...)}
	}
	if !set {
		usd = SMSDefaultSpendUSD
	}
	n := usd / SMSPriceUSD
	head := fmt.Sprintf("SNS MonthlySpendLimit USD %g (about %.0f SMS at USD %g each to US numbers)", usd, n, SMSPriceUSD)
	switch {
	case !set || usd <= SMSDefaultSpendUSD:
		return c(Warning, "%s: a new account's default; raise it (and leave the SMS sandbox) before codes go by SMS", head)
	case users > 0 && float64(users) > n:
		return c(Warning, "%s: fewer than the %d users, if every code went by SMS", head, users)
	}
	return c(OK, "%s", head)
}

// CheckQuota grades the recovery quota the account has in region (err:
// it could not be read, and the documented default applies).
func CheckQuota(region string, quota float64, err error, rate float64) Check {
	const name = "recovery quota"
	src := "Service Quotas"
	if err != nil {
		src = fmt.Sprintf("the documented default (Service Quotas did not say: %v)", err)
		var denied *awserr.DeniedError
		if errors.As(err, &denied) {
			src = fmt.Sprintf("the documented default (permission %s is missing)", denied.Action)
		}
	}
	c := Check{Subject: region, Name: name}
	if rate >= quota {
		c.Level, c.Message = Warning, fmt.Sprintf("UserAccountRecovery quota %g/s, from %s: --rate %g leaves nothing to real users' ForgotPassword", quota, src, rate)
		return c
	}
	c.Level, c.Message = OK, fmt.Sprintf("UserAccountRecovery quota %g/s, from %s", quota, src)
	if err != nil {
		var denied *awserr.DeniedError
		if errors.As(err, &denied) {
			c.Level = Warning
		}
	}
	return c
}

// RecommendedRate is the highest campaign rate that leaves real users'
// peak of quota free, with a tenth of the quota to spare; 0 when none is.
func RecommendedRate(quota, peak float64) float64 {
	r := math.Floor(quota - peak - quota/10)
	return math.Max(r, 0)
}

// CheckUsage grades a campaign's rate against real users' peak use of the
// recovery category: points are per-minute CallCount sums.
func CheckUsage(region string, points []usagemetrics.Point, err error, quota, rate float64) Check {
	const name = "real users' use"
	if errors.Is(err, awserr.ErrNoData) {
		err = nil
	}
	if err != nil {
		return unreadable(region, name, err)
	}
	var peak usagemetrics.Point
	for _, p := range points {
		if p.Value > peak.Value {
			peak = p
		}
	}
	perSec := peakPerSecond(points)
	rec := RecommendedRate(quota, perSec)
	c := Check{Subject: region, Name: name}
	switch {
	case len(points) == 0:
		c.Level, c.Message = OK, fmt.Sprintf("no UserAccountRecovery calls in CloudWatch (AWS/Usage) over the window: recommended --rate %g", rec)
	case rate > rec:
		c.Level, c.Message = Warning, fmt.Sprintf("real users' peak %.2f calls/s (%g in the minute of %s) of the %g/s quota: --rate %g would throttle them at such a peak; recommended --rate %g",
			perSec, peak.Value, peak.At.UTC().Format(time.RFC3339), quota, rate, rec)
	default:
		c.Level, c.Message = OK, fmt.Sprintf("real users' peak %.2f calls/s (%g in the minute of %s) of the %g/s quota: --rate %g leaves it free; recommended --rate at most %g",
			perSec, peak.Value, peak.At.UTC().Format(time.RFC3339), quota, rate, rec)
	}
	return c
}
