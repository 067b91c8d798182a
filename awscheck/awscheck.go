// Package awscheck reads the capacity around a campaign from the AWS APIs
// besides Cognito: the SES send quota, the SNS SMS spend limit, Service
// Quotas, and Cognito's usage metrics in CloudWatch. It implements the
// small interfaces of preflight (the capacity checks) and usagemetrics.Reader.
package awscheck

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ses"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/usagemetrics"
)

// Client reads in any account and Region, with SDK clients made on first
// use. Its methods take a scope: a Region, or a job.Scope key
// ("ACCOUNT/REGION") for an account reached through a role
// (accounts.Resolver.ScopeReach). It is safe for concurrent use.
type Client struct {
	reach *accounts.Resolver

	mu  sync.Mutex
	ses map[string]*ses.Client
	sns map[string]*sns.Client
	sq  map[string]*servicequotas.Client
	cw  map[string]*cloudwatch.Client
}

var _ usagemetrics.Reader = (*Client)(nil)

// New returns a Client built on cfg (the SDK configuration resetq loads
// once; the AWS_ENDPOINT_URL_* variables apply), for cfg's account.
func New(cfg aws.Config) *Client { return NewWith(accounts.New(cfg, nil)) }

// NewWith returns a Client that reaches each account as reach says.
func NewWith(reach *accounts.Resolver) *Client {
	return &Client{reach: reach, ses: map[string]*ses.Client{}, sns: map[string]*sns.Client{},
		sq: map[string]*servicequotas.Client{}, cw: map[string]*cloudwatch.Client{}}
}

// lazy returns the client of scope in m, made with mk from the scope's
// credentials and Region on first use.
func lazy[T any](c *Client, m map[string]*T, scope string, mk func(cfg aws.Config, region string) *T) *T {
	reach := c.reach.ScopeReach(scope)
	region := job.ParseScope(scope).Region
	key := reach.Key + "|" + region
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := m[key]
	if cl == nil {
		cl = mk(reach.Config, region)
		m[key] = cl
	}
	return cl
}

// SendQuota reads the SES account's sending limits (GetSendQuota): the
// emails it may send in 24 hours, per second, and has sent in the last 24
// hours.
func (c *Client) SendQuota(ctx context.Context, scope string) (max24h, maxRate, sent24h float64, err error) {
	cl := lazy(c, c.ses, scope, func(cfg aws.Config, region string) *ses.Client {
		return ses.NewFromConfig(cfg, func(o *ses.Options) { o.Region = region })
	})
	out, err := cl.GetSendQuota(ctx, &ses.GetSendQuotaInput{})
	if err != nil {
		return 0, 0, 0, classify("ses:GetSendQuota", err)
	}
	return out.Max24HourSend, out.MaxSendRate, out.SentLast24Hours, nil
}

// MonthlySpendLimit reads the account's SMS spend limit in USD
// (GetSMSAttributes); set is false when the account has none set.
func (c *Client) MonthlySpendLimit(ctx context.Context, scope string) (usd float64, set bool, err error) {
	cl := lazy(c, c.sns, scope, func(cfg aws.Config, region string) *sns.Client {
		return sns.NewFromConfig(cfg, func(o *sns.Options) { o.Region = region })
	})
	out, err := cl.GetSMSAttributes(ctx, &sns.GetSMSAttributesInput{Attributes: []string{"MonthlySpendLimit"}})
	if err != nil {
		return 0, false, classify("sns:GetSMSAttributes", err)
	}
	v, ok := out.Attributes["MonthlySpendLimit"]
	if !ok || v == "" {
		return 0, false, nil
	}
	usd, err = strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, false, fmt.Errorf("sns:GetSMSAttributes: MonthlySpendLimit %q: %w", v, err)
	}
	return usd, true, nil
}

// ServiceQuota reads a quota's applied value (GetServiceQuota); an
// unknown quota or service is awserr.ErrNoData.
func (c *Client) ServiceQuota(ctx context.Context, scope, service, code string) (float64, error) {
	cl := lazy(c, c.sq, scope, func(cfg aws.Config, region string) *servicequotas.Client {
		return servicequotas.NewFromConfig(cfg, func(o *servicequotas.Options) { o.Region = region })
	})
	out, err := cl.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String(service), QuotaCode: aws.String(code)})
	if err != nil {
		return 0, classify("servicequotas:GetServiceQuota", err)
	}
	if out.Quota == nil || out.Quota.Value == nil {
		return 0, fmt.Errorf("servicequotas:GetServiceQuota %s %s: %w", service, code, awserr.ErrNoData)
	}
	return *out.Quota.Value, nil
}

// Usage reads a Cognito usage metric of a quota category (AWS/Usage,
// statistic Sum) per period between start and end, oldest first.
func (c *Client) Usage(ctx context.Context, scope string, q usagemetrics.Query) ([]usagemetrics.Point, error) {
	cl := lazy(c, c.cw, scope, NewCloudWatch)
	in := &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(q.Start), EndTime: aws.Time(q.End), ScanBy: cwtypes.ScanByTimestampAscending,
		MetricDataQueries: []cwtypes.MetricDataQuery{{
			Id: aws.String("m"),
			MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String(usagemetrics.Namespace), MetricName: aws.String(q.Metric), Dimensions: []cwtypes.Dimension{
					{Name: aws.String("Service"), Value: aws.String(usagemetrics.Service)},
					{Name: aws.String("Type"), Value: aws.String("API")},
					{Name: aws.String("Resource"), Value: aws.String(q.Category)},
					{Name: aws.String("Class"), Value: aws.String("None")},
				}},
				Period: aws.Int32(int32(q.Period / time.Second)),
				Stat:   aws.String("Sum"),
			},
		}},
	}
	var points []usagemetrics.Point
	p := cloudwatch.NewGetMetricDataPaginator(cl, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify("cloudwatch:GetMetricData", err)
		}
		for _, r := range out.MetricDataResults {
			for i := range min(len(r.Timestamps), len(r.Values)) {
				points = append(points, usagemetrics.Point{At: r.Timestamps[i], Value: r.Values[i]})
			}
		}
	}
	return points, nil
}

// NewCloudWatch is a CloudWatch client for region that speaks the AWS
// Query protocol, which CloudWatch still serves beside CBOR (the SDK's
// default since 2025) and which moto 5.2.1 speaks (it answers CBOR with
// 404).
func NewCloudWatch(cfg aws.Config, region string) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		o.Region = region
		o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
	})
}

// classify wraps err: an *awserr.DeniedError naming action for a missing
// permission, awserr.ErrNoData for an unknown resource.
func classify(action string, err error) error {
	switch code := awserr.Code(awserr.From(err)); {
	case awserr.Denied(code):
		return &awserr.DeniedError{Action: action, Err: err}
	case code == "NoSuchResourceException" || code == "ResourceNotFoundException":
		return fmt.Errorf("%s: %w: %v", action, awserr.ErrNoData, err)
	}
	return fmt.Errorf("%s: %w", action, err)
}
