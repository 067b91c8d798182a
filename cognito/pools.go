package cognito

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/userpool"
)

// PageSize is the most users ListUsers and ListUsersInGroup return a page.
const PageSize = 60

// ListAPI is the part of the Cognito client that lists users.
type ListAPI interface {
	ListUsers(context.Context, *cip.ListUsersInput, ...func(*cip.Options)) (*cip.ListUsersOutput, error)
	ListUsersInGroup(context.Context, *cip.ListUsersInGroupInput, ...func(*cip.Options)) (*cip.ListUsersInGroupOutput, error)
}

// NewListClient returns a client for region with the SDK's retries off,
// for a Lister whose caller paces and retries (enqueue.Listing).
func NewListClient(cfg aws.Config, region string) ListAPI {
	return cip.NewFromConfig(cfg, func(o *cip.Options) {
		o.Region = region
		o.Retryer = aws.NopRetryer{}
	})
}

// Lister reads pages of a pool's usernames. The errors are the SDK's, unwrapped.
type Lister struct{ API ListAPI }

// UsernamesPage reads one page: ListUsersInGroup when group is set, else
// ListUsers with filter. next is "" after the last page.
func (l Lister) UsernamesPage(ctx context.Context, pool, filter, group, token string) (names []string, next string, err error) {
	users, next, err := listPage(ctx, l.API, pool, filter, group, token)
	for _, u := range users {
		names = append(names, aws.ToString(u.Username))
	}
	return names, next, awserr.From(err)
}

// listPage reads one page of users: ListUsersInGroup when group is set,
// else ListUsers with filter.
func listPage(ctx context.Context, api ListAPI, pool, filter, group, token string) ([]types.UserType, string, error) {
	var tok *string
	if token != "" {
		tok = aws.String(token)
	}
	if group != "" {
		out, err := api.ListUsersInGroup(ctx, &cip.ListUsersInGroupInput{
			UserPoolId: aws.String(pool), GroupName: aws.String(group), Limit: aws.Int32(PageSize), NextToken: tok})
		if err != nil {
			return nil, "", err
		}
		return out.Users, aws.ToString(out.NextToken), nil
	}
	in := &cip.ListUsersInput{UserPoolId: aws.String(pool), Limit: aws.Int32(PageSize), PaginationToken: tok}
	if filter != "" {
		in.Filter = aws.String(filter)
	}
	out, err := api.ListUsers(ctx, in)
	if err != nil {
		return nil, "", err
	}
	return out.Users, aws.ToString(out.PaginationToken), nil
}

// Pools reads user pools' settings (DescribeUserPool) in the Region of
// each pool, with the SDK's default retries. It is safe for concurrent use.
type Pools struct {
	clients *regionClients
}

// NewPools returns a Pools built on cfg, for pools in cfg's account.
func NewPools(cfg aws.Config) *Pools { return NewPoolsWith(accounts.New(cfg, nil)) }

// NewPoolsWith returns a Pools that reaches each pool as reach says.
func NewPoolsWith(reach *accounts.Resolver) *Pools {
	return &Pools{clients: newRegionClients(reach, nil)}
}

func (p *Pools) client(ctx context.Context, pool string) *cip.Client { return p.clients.get(ctx, pool) }

// poolDescriber is the part of the Cognito client that describes a pool.
type poolDescriber interface {
	DescribeUserPool(context.Context, *cip.DescribeUserPoolInput, ...func(*cip.Options)) (*cip.DescribeUserPoolOutput, error)
}

// CaseSensitive reports whether the usernames of pool are case-sensitive:
// they are unless DescribeUserPool says UsernameConfiguration.CaseSensitive
// false. A pool without a UsernameConfiguration (what CreateUserPool makes
// when it is not given) has case-sensitive usernames. On an error it
// returns true, with the error.
func (p *Pools) CaseSensitive(ctx context.Context, pool string) (bool, error) {
	return caseSensitive(ctx, p.client(ctx, pool), pool)
}

func caseSensitive(ctx context.Context, api poolDescriber, pool string) (bool, error) {
	out, err := api.DescribeUserPool(ctx, &cip.DescribeUserPoolInput{UserPoolId: aws.String(pool)})
	if err != nil {
		return true, fmt.Errorf("describe user pool %s: %w", pool, awserr.From(err))
	}
	if out.UserPool == nil || out.UserPool.UsernameConfiguration == nil || out.UserPool.UsernameConfiguration.CaseSensitive == nil {
		return true, nil
	}
	return *out.UserPool.UsernameConfiguration.CaseSensitive, nil
}

// Describe reads what preflight's checks need from DescribeUserPool.
func (p *Pools) Describe(ctx context.Context, id string) (userpool.Pool, error) {
	out, err := p.client(ctx, id).DescribeUserPool(ctx, &cip.DescribeUserPoolInput{UserPoolId: aws.String(id)})
	if err != nil {
		if e, ok := awserr.As(awserr.From(err)); ok {
			return userpool.Pool{}, fmt.Errorf("DescribeUserPool: %s: %s", e.Code, e.Message)
		}
		return userpool.Pool{}, fmt.Errorf("DescribeUserPool: %w", err)
	}
	pool := userpool.Pool{ID: id}
	up := out.UserPool
	if up == nil {
		return pool, errors.New("DescribeUserPool returned no pool")
	}
	pool.EstimatedUsers = int(up.EstimatedNumberOfUsers)
	if up.AccountRecoverySetting != nil {
		for _, m := range up.AccountRecoverySetting.RecoveryMechanisms {
			pool.Recovery = append(pool.Recovery, string(m.Name))
		}
	}
	if ec := up.EmailConfiguration; ec != nil {
		pool.EmailSendingAccount = string(ec.EmailSendingAccount)
		pool.EmailSourceARN = aws.ToString(ec.SourceArn)
	}
	if sc := up.SmsConfiguration; sc != nil {
		pool.SMSCallerARN = aws.ToString(sc.SnsCallerArn)
	}
	if lc := up.LambdaConfig; lc != nil {
		pool.CustomMessageLambda = aws.ToString(lc.CustomMessage)
	}
	if pol := up.Policies; pol != nil && pol.SignInPolicy != nil {
		for _, f := range pol.SignInPolicy.AllowedFirstAuthFactors {
			pool.FirstAuthFactors = append(pool.FirstAuthFactors, string(f))
		}
	}
	return pool, nil
}
