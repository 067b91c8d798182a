// Package cognito calls AdminResetUserPassword in the Region of each job's
// user pool, with its account's credentials (accounts.Resolver): one SDK
// client per credentials and Region.
package cognito

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/resetq/resetq/accounts"
	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
	"github.com/resetq/resetq/worker"
)

// Client resets users. It is safe for concurrent use.
type Client struct {
	clients *regionClients
}

// regionClients makes one SDK client per credentials and Region, on first
// use, with the given retryer (nil: the SDK's default). It is safe for
// concurrent use.
type regionClients struct {
	reach   *accounts.Resolver
	retryer func() aws.Retryer

	mu sync.Mutex
	m  map[string]*cip.Client
}

func newRegionClients(reach *accounts.Resolver, retryer func() aws.Retryer) *regionClients {
	return &regionClients{reach: reach, retryer: retryer, m: map[string]*cip.Client{}}
}

// expired renews pool's role credentials when err (from awserr.From)
// says they expired, so the next call uses new ones, and returns err as a
// passing fault of the role (retried, not a circuit of the account's
// credentials); any other err as it is.
func (r *regionClients) expired(ctx context.Context, pool string, err error) error {
	switch awserr.Code(err) {
	case "ExpiredTokenException", "ExpiredToken":
		reach := r.reach.Pool(pool, job.CampaignOf(ctx))
		if reach.Role != "" {
			r.reach.Invalidate(reach)
			return &awserr.RoleError{Role: reach.Role, Err: err}
		}
	}
	return err
}

// get is the client for pool's calls for the campaign in ctx (its role
// session's name, job.WithCampaign).
func (r *regionClients) get(ctx context.Context, pool string) *cip.Client {
	reach := r.reach.Pool(pool, job.CampaignOf(ctx))
	region := job.Job{UserPoolID: pool}.Region()
	key := reach.Key + "|" + region
	r.mu.Lock()
	defer r.mu.Unlock()
	cl := r.m[key]
	if cl == nil {
		cl = cip.NewFromConfig(reach.Config, func(o *cip.Options) {
			o.Region = region
			if r.retryer != nil {
				o.Retryer = r.retryer()
			}
		})
		r.m[key] = cl
	}
	return cl
}

var (
	_ worker.Resetter     = (*Client)(nil)
	_ worker.StatusReader = (*Client)(nil)
)

// New returns a Client built on cfg (the SDK configuration resetq loads
// once, so credentials, profiles and AWS_ENDPOINT_URL[_COGNITO_IDENTITY_PROVIDER]
// apply), for pools in cfg's account.
func New(cfg aws.Config) *Client { return NewWith(accounts.New(cfg, nil)) }

// NewWith returns a Client that reaches each pool as reach says. The SDK's
// own retries are off: the worker paces and retries itself.
func NewWith(reach *accounts.Resolver) *Client {
	return &Client{clients: newRegionClients(reach, func() aws.Retryer { return aws.NopRetryer{} })}
}

func (c *Client) client(ctx context.Context, pool string) *cip.Client {
	return c.clients.get(ctx, pool)
}

// ResetUserPassword calls AdminResetUserPassword for the job in the Region
// of its pool.
func (c *Client) ResetUserPassword(ctx context.Context, job job.Job) error {
	region := job.Region()
	_, err := c.client(ctx, job.UserPoolID).AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{
		UserPoolId:     aws.String(job.UserPoolID),
		Username:       aws.String(job.Username),
		ClientMetadata: job.ClientMetadata,
	})
	if err != nil {
		err = c.clients.expired(ctx, job.UserPoolID, awserr.From(err))
		return fmt.Errorf("admin-reset-user-password in %s: %w", region, err)
	}
	return nil
}

// ReadUser reads the user (AdminGetUser) in the Region of the job's pool:
// its stored name, status (e.g. "RESET_REQUIRED"), whether it is enabled
// and has a verified email or phone, and when Cognito last changed it.
func (c *Client) ReadUser(ctx context.Context, job job.Job) (worker.User, error) {
	region := job.Region()
	out, err := c.client(ctx, job.UserPoolID).AdminGetUser(ctx, &cip.AdminGetUserInput{
		UserPoolId: aws.String(job.UserPoolID),
		Username:   aws.String(job.Username),
	})
	if err != nil {
		err = c.clients.expired(ctx, job.UserPoolID, awserr.From(err))
		return worker.User{}, fmt.Errorf("admin-get-user in %s: %w", region, err)
	}
	u := worker.User{Username: aws.ToString(out.Username), Status: string(out.UserStatus), Enabled: out.Enabled,
		LastModified: aws.ToTime(out.UserLastModifiedDate)}
	for _, a := range out.UserAttributes {
		switch aws.ToString(a.Name) {
		case "email_verified", "phone_number_verified":
			u.Reachable = u.Reachable || aws.ToString(a.Value) == "true"
		}
	}
	return u, nil
}

// KillPassword sets a random password nobody learns
// (AdminSetUserPassword), so the user's old password stops working at
// once and no message is sent: permanent (the user stays CONFIRMED and
// the later reset works) or temporary (a user who never signed in stays
// FORCE_CHANGE_PASSWORD and the later re-invitation works). The password
// is never kept, logged or returned.
func (c *Client) KillPassword(ctx context.Context, job job.Job, permanent bool) error {
	region := job.Region()
	var err error
	// A pool whose policy asks the longest minimum (99) refuses the usual
	// length: once more, longer (Cognito takes 256).
	for _, n := range []int{RandomPasswordLength, LongPasswordLength} {
		var pw string
		if pw, err = randomPassword(n); err != nil {
			return err
		}
		_, err = c.client(ctx, job.UserPoolID).AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{
			UserPoolId: aws.String(job.UserPoolID),
			Username:   aws.String(job.Username),
			Password:   aws.String(pw),
			Permanent:  permanent,
		})
		var weak *types.InvalidPasswordException
		if !errors.As(err, &weak) {
			break
		}
	}
	if err != nil {
		err = c.clients.expired(ctx, job.UserPoolID, awserr.From(err))
		return fmt.Errorf("admin-set-user-password in %s: %w", region, err)
	}
	return nil
}

var _ worker.Remediator = (*Client)(nil)

// GlobalSignOut ends the user's sessions (AdminUserGlobalSignOut): Cognito
// then refuses the user's refresh tokens.
func (c *Client) GlobalSignOut(ctx context.Context, job job.Job) error {
	region := job.Region()
	_, err := c.client(ctx, job.UserPoolID).AdminUserGlobalSignOut(ctx, &cip.AdminUserGlobalSignOutInput{
		UserPoolId: aws.String(job.UserPoolID),
		Username:   aws.String(job.Username),
	})
	if err != nil {
		err = c.clients.expired(ctx, job.UserPoolID, awserr.From(err))
		return fmt.Errorf("admin-user-global-sign-out in %s: %w", region, err)
	}
	return nil
}

// Reinvite sends a user who never signed in a new invitation, with a new
// temporary password (AdminCreateUser, MessageAction RESEND); the old one
// stops working.
func (c *Client) Reinvite(ctx context.Context, job job.Job) error {
	region := job.Region()
	_, err := c.client(ctx, job.UserPoolID).AdminCreateUser(ctx, &cip.AdminCreateUserInput{
		UserPoolId:     aws.String(job.UserPoolID),
		Username:       aws.String(job.Username),
		MessageAction:  types.MessageActionTypeResend,
		ClientMetadata: job.ClientMetadata,
	})
	if err != nil {
		err = c.clients.expired(ctx, job.UserPoolID, awserr.From(err))
		return fmt.Errorf("admin-create-user (resend) in %s: %w", region, err)
	}
	return nil
}

// DisableUser disables the user (AdminDisableUser): the password stops
// working until AdminEnableUser.
func (c *Client) DisableUser(ctx context.Context, job job.Job) error {
	region := job.Region()
	_, err := c.client(ctx, job.UserPoolID).AdminDisableUser(ctx, &cip.AdminDisableUserInput{
		UserPoolId: aws.String(job.UserPoolID),
		Username:   aws.String(job.Username),
	})
	if err != nil {
		err = c.clients.expired(ctx, job.UserPoolID, awserr.From(err))
		return fmt.Errorf("admin-disable-user in %s: %w", region, err)
	}
	return nil
}
