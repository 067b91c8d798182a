package cognito

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsratelimit "github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/userpool"
)

// Users reads users' state (AdminGetUser, ListUsers, ListUsersInGroup) in
// the Region of each pool. It is safe for concurrent use.
type Users struct {
	clients *regionClients
}

// NewUsers returns a Users built on cfg. Its SDK clients retry a throttled
// or failed read up to 10 times with backoff: the caller paces the calls
// under the read quotas, and a report only reads.
func NewUsers(cfg aws.Config) *Users { return NewUsersWith(accounts.New(cfg, nil)) }

// NewUsersWith is NewUsers reaching each pool as reach says.
func NewUsersWith(reach *accounts.Resolver) *Users {
	return &Users{clients: newRegionClients(reach, func() aws.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 10
			so.RateLimiter = awsratelimit.None // the caller paces; no client-side retry quota
		})
	})}
}

func (u *Users) client(ctx context.Context, pool string) *cip.Client { return u.clients.get(ctx, pool) }

// GetUser reads one user with AdminGetUser; found is false when Cognito
// answers UserNotFoundException.
func (u *Users) GetUser(ctx context.Context, pool, username string) (userpool.User, bool, error) {
	out, err := u.client(ctx, pool).AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: aws.String(pool), Username: aws.String(username)})
	var nf *types.UserNotFoundException
	switch {
	case errors.As(err, &nf):
		return userpool.User{}, false, nil
	case err != nil:
		return userpool.User{}, false, fmt.Errorf("admin-get-user: %w", awserr.From(err))
	}
	return userpool.User{Username: aws.ToString(out.Username), Status: string(out.UserStatus), Enabled: out.Enabled,
		LastModified: aws.ToTime(out.UserLastModifiedDate)}, true, nil
}

// UsersPage reads one page of 60 users: ListUsersInGroup when group is set,
// else ListUsers with filter.
func (u *Users) UsersPage(ctx context.Context, pool, filter, group, token string) ([]userpool.User, string, error) {
	page, next, err := listPage(ctx, u.client(ctx, pool), pool, filter, group, token)
	switch {
	case err != nil && group != "":
		return nil, "", fmt.Errorf("list-users-in-group: %w", awserr.From(err))
	case err != nil:
		return nil, "", fmt.Errorf("list-users: %w", awserr.From(err))
	}
	return users(page), next, nil
}

func users(in []types.UserType) []userpool.User {
	out := make([]userpool.User, len(in))
	for i, t := range in {
		out[i] = userpool.User{Username: aws.ToString(t.Username), Status: string(t.UserStatus), Enabled: t.Enabled,
			LastModified: aws.ToTime(t.UserLastModifiedDate)}
	}
	return out
}
