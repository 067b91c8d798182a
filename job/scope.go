package job

import (
	"context"
	"strings"
)

// Scope is where Cognito counts a quota: one AWS account in one Region.
// Pacing, circuits, usage metrics and the fleet's Redis keys are per Scope.
// Account is "" when it is not known (one account, its ID unread).
type Scope struct{ Account, Region string }

// Key is the Scope as one string, "ACCOUNT/REGION", or "REGION" when the
// account is not known: the key of its limiter, circuit and Redis keys.
func (s Scope) Key() string {
	if s.Account == "" {
		return s.Region
	}
	return s.Account + "/" + s.Region
}

// ParseScope is the Scope of a Key.
func ParseScope(key string) Scope {
	if account, region, ok := strings.Cut(key, "/"); ok {
		return Scope{Account: account, Region: region}
	}
	return Scope{Region: key}
}

type campaignKey struct{}

// WithCampaign is ctx carrying the campaign of the job whose call it is
// for: the adapters name their role sessions after it (CloudTrail then
// says which campaign made the call).
func WithCampaign(ctx context.Context, campaign string) context.Context {
	return context.WithValue(ctx, campaignKey{}, campaign)
}

// CampaignOf is the campaign WithCampaign put in ctx, or "".
func CampaignOf(ctx context.Context) string {
	c, _ := ctx.Value(campaignKey{}).(string)
	return c
}
