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

// SendQuotaReader reads the SES send quota (GetSendQuota): the emails the
// account may send in 24 hours, per second, and has sent in the last 24
// hours.
type SendQuotaReader interface {
	SendQuota(ctx context.Context, region string) (max24h, maxRate, sent24h float64, err error)
}

// SMSLimitReader reads the SNS monthly SMS spend limit in USD; set is false
// when none is set (the account default applies).
type SMSLimitReader interface {
	MonthlySpendLimit(ctx context.Context, region string) (usd float64, set bool, err error)
}

// QuotaReader reads a quota's applied value (Service Quotas).
type QuotaReader interface {
	ServiceQuota(ctx context.Context, region, service, code string) (float64, error)
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
}

func (c Capacity) withDefaults() Capacity {
	c.Window = cmp.Or(c.Window, DefaultUsageWindow)
	return c
}

// Check runs the capacity checks of pools for a campaign of users resets
// at rate per second per Region, at now.
func (c Capacity) Check(ctx context.Context, pools []userpool.Pool, users int, rate float64, now time.Time) []Check {
	c = c.withDefaults()
	var out []Check
	var regions []string
	for _, p := range pools {
		if c.SES != nil && slices.Contains(p.Recovery, RecoveryEmail) && p.EmailSendingAccount == "DEVELOPER" {
			region := arnRegion(p.EmailSourceARN, p.Region())
			max24h, maxRate, sent24h, err := c.SES.SendQuota(ctx, region)
			q := SendQuota{Max24h: max24h, MaxRate: maxRate, Sent24h: sent24h}
			out = append(out, CheckSES(p.ID, region, q, err, users, rate)...)
		}
		if c.SMS != nil && slices.Contains(p.Recovery, RecoveryPhone) {
			usd, set, err := c.SMS.MonthlySpendLimit(ctx, p.Region())
			out = append(out, CheckSMS(p.ID, usd, set, err, users))
		}
		if !slices.Contains(regions, p.Region()) {
			regions = append(regions, p.Region())
		}
	}
	for _, region := range regions {
		quota, qerr := float64(RecoveryQuota), error(awserr.ErrNoData)
		if c.Quota != nil {
			var v float64
			if v, qerr = c.Quota.ServiceQuota(ctx, region, QuotaService, RecoveryQuotaCode); qerr == nil {
				quota = v
			}
		}
		out = append(out, CheckQuota(region, quota, qerr, rate))
		if c.Usage != nil {
			pts, err := c.Usage.Usage(ctx, region, usagemetrics.NewQuery(usagemetrics.RecoveryCategory, usagemetrics.CallCount, c.Window, now))
			out = append(out, CheckUsage(region, pts, err, quota, rate))
		}
	}
	return out
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
	perSec := peak.Value / 60
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
