package accounts

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/job"
)

const (
	// SessionDuration is how long assumed credentials last: an hour, the
	// longest a role allows unless its MaxSessionDuration is raised.
	SessionDuration = time.Hour
	// RefreshBefore is how long before they expire the credentials are
	// renewed (less up to half of it at random, so a fleet spreads its
	// AssumeRole calls): no call is made with credentials about to lapse.
	RefreshBefore = 5 * time.Minute
	// MaxSessions bounds the role sessions per role: one per campaign, so
	// CloudTrail names the campaign; past it, jobs of further campaigns
	// share the session "resetq" (a queue writer cannot make the worker
	// assume a role once per made-up campaign).
	MaxSessions = 16
	// identityTimeout bounds the one GetCallerIdentity call.
	identityTimeout = 5 * time.Second
)

// Reach is how resetq reaches one pool, or one account in a Region.
type Reach struct {
	// Config is the SDK configuration with the credentials to use.
	Config aws.Config
	// Key names the credentials, for caches of SDK clients: "" for the
	// default credentials, else the role and its session.
	Key string
	// Account is the pool's AWS account ("" when not known).
	Account string
	// Role is the assumed role's ARN, "" for the default credentials.
	Role string
}

// Resolver gives each pool its credentials and account. It is safe for
// concurrent use.
type Resolver struct {
	base      aws.Config
	roles     Roles
	byAccount map[string]Role // the role of each account's first pool, for account-wide reads

	mu             sync.Mutex
	defaultAccount string
	sts            map[string]*sts.Client // by Region
	creds          map[string]aws.CredentialsProvider
	sessions       map[string]int // sessions made per role
}

// New returns a Resolver that reaches the pools in roles through their
// roles and every other pool with base's credentials. roles may be nil.
func New(base aws.Config, roles Roles) *Resolver {
	r := &Resolver{base: base, roles: roles, byAccount: map[string]Role{},
		sts: map[string]*sts.Client{}, creds: map[string]aws.CredentialsProvider{}, sessions: map[string]int{}}
	for _, pool := range slices.Sorted(maps.Keys(roles)) {
		if _, ok := r.byAccount[roles[pool].Account]; !ok {
			r.byAccount[roles[pool].Account] = roles[pool]
		}
	}
	return r
}

// LearnDefaultAccount reads the default credentials' account with one
// sts:GetCallerIdentity (which needs no permission), so pools without a
// role are paced per account like the others. On an error their account
// stays "" (pacing per Region, as in one account).
func (r *Resolver) LearnDefaultAccount(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	out, err := r.stsClient(cmp.Or(r.base.Region, "us-east-1")).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{},
		func(o *sts.Options) { o.RetryMaxAttempts = 4 })
	if err != nil {
		return fmt.Errorf("sts get-caller-identity: %w", awserr.From(err))
	}
	r.mu.Lock()
	r.defaultAccount = aws.ToString(out.Account)
	r.mu.Unlock()
	return nil
}

// DefaultAccount is the default credentials' account, "" until
// LearnDefaultAccount succeeds.
func (r *Resolver) DefaultAccount() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.defaultAccount
}

// Accounts lists the accounts of the roles file, sorted.
func (r *Resolver) Accounts() []string { return slices.Sorted(maps.Keys(r.byAccount)) }

// Roles is the roles file's pools and their roles.
func (r *Resolver) Roles() Roles { return r.roles }

// Account is the AWS account of pool: its role's, else the default
// credentials'.
func (r *Resolver) Account(pool string) string {
	if role, ok := r.roles[pool]; ok {
		return role.Account
	}
	return r.DefaultAccount()
}

// Role is the key of pool's role, "ARN|EXTERNAL_ID", or "" for a pool
// the default credentials reach: the worker keeps a circuit per role, so
// a role that cannot be assumed holds its own pools only.
func (r *Resolver) Role(pool string) string {
	if role, ok := r.roles[pool]; ok {
		return role.ARN + "|" + role.ExternalID
	}
	return ""
}

// Scope is where pool's quotas are counted: its account in its Region.
func (r *Resolver) Scope(pool string) job.Scope {
	return job.Scope{Account: r.Account(pool), Region: job.Job{UserPoolID: pool}.Region()}
}

// Pool is how to reach pool for campaign (which names the role session,
// "resetq-CAMPAIGN", in CloudTrail).
func (r *Resolver) Pool(pool, campaign string) Reach {
	role, ok := r.roles[pool]
	if !ok {
		return Reach{Config: r.base, Account: r.DefaultAccount()}
	}
	return r.assume(role, job.Job{UserPoolID: pool}.Region(), campaign)
}

// ScopeReach is how to reach the account of a Scope key (job.Scope.Key)
// for reads of the account in its Region (usage metrics, quotas): the
// default credentials in their own account, else the role of the
// account's first pool in the roles file.
func (r *Resolver) ScopeReach(key string) Reach {
	s := job.ParseScope(key)
	role, ok := r.byAccount[s.Account]
	if !ok || s.Account == "" || s.Account == r.DefaultAccount() {
		return Reach{Config: r.base, Account: r.DefaultAccount()}
	}
	return r.assume(role, s.Region, "")
}

// Invalidate makes reach's role credentials be assumed again before their
// next use: for an answer that they expired (a clock running behind STS's
// by more than RefreshBefore). The default credentials are the SDK's own.
func (r *Resolver) Invalidate(reach Reach) {
	if c, ok := reach.Config.Credentials.(*aws.CredentialsCache); ok && reach.Role != "" {
		c.Invalidate()
	}
}

// assume is role's Reach, with one credentials cache per role session.
func (r *Resolver) assume(role Role, region, campaign string) Reach {
	r.mu.Lock()
	defer r.mu.Unlock()
	session := SessionName(campaign)
	key := role.ARN + "|" + role.ExternalID + "|" + session
	p, ok := r.creds[key]
	if !ok && r.sessions[role.ARN] >= MaxSessions {
		session = SessionName("")
		key = role.ARN + "|" + role.ExternalID + "|" + session
		p, ok = r.creds[key]
	}
	if !ok {
		stsRegion := cmp.Or(r.base.Region, region)
		p = aws.NewCredentialsCache(&roleProvider{role: role.ARN, p: stscreds.NewAssumeRoleProvider(r.stsClientLocked(stsRegion), role.ARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = session
				o.Duration = SessionDuration
				if role.ExternalID != "" {
					o.ExternalID = aws.String(role.ExternalID)
				}
			})},
			func(o *aws.CredentialsCacheOptions) {
				o.ExpiryWindow = RefreshBefore
				o.ExpiryWindowJitterFrac = 0.5
			})
		r.creds[key] = p
		r.sessions[role.ARN]++
	}
	cfg := r.base.Copy()
	cfg.Credentials = p
	return Reach{Config: cfg, Key: key, Account: role.Account, Role: role.ARN}
}

func (r *Resolver) stsClient(region string) *sts.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stsClientLocked(region)
}

func (r *Resolver) stsClientLocked(region string) *sts.Client {
	c := r.sts[region]
	if c == nil {
		c = sts.NewFromConfig(r.base, func(o *sts.Options) { o.Region = region })
		r.sts[region] = c
	}
	return c
}

// SessionName is the role session name of campaign: "resetq-CAMPAIGN",
// with what STS does not take replaced by "-", at most 64 characters.
func SessionName(campaign string) string {
	name := "resetq"
	if campaign != "" {
		name += "-" + strings.Map(func(c rune) rune {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("_+=,.@-", c):
				return c
			}
			return '-'
		}, campaign)
	}
	return name[:min(len(name), 64)] // every byte is ASCII now
}

// DenialMemory is how long a refused AssumeRole is answered from memory:
// the jobs of a role that cannot be assumed do not each call STS (whose
// quota the worker's account shares with every other role's renewal).
const DenialMemory = 30 * time.Second

// roleProvider marks a failed AssumeRole as an *awserr.RoleError, so the
// worker tells a role it cannot assume from the pool's own errors, and
// remembers a refusal for DenialMemory.
type roleProvider struct {
	role string
	p    aws.CredentialsProvider

	mu       sync.Mutex
	denied   *awserr.RoleError
	deniedAt time.Time
}

func (p *roleProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	if p.denied != nil && time.Since(p.deniedAt) < DenialMemory {
		err := p.denied
		p.mu.Unlock()
		return aws.Credentials{}, err
	}
	p.mu.Unlock()
	c, err := p.p.Retrieve(ctx)
	if err != nil {
		re := &awserr.RoleError{Role: p.role, Denied: refused(err), Err: err}
		if re.Denied {
			p.mu.Lock()
			p.denied, p.deniedAt = re, time.Now()
			p.mu.Unlock()
		}
		return c, re
	}
	return c, nil
}

// refused reports an AssumeRole that STS answered with a refusal about the
// role (any code but a throttle, a fault, or one about the caller's own
// credentials, which every role would get alike); a network error or a
// timeout is not one.
func refused(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch code := awserr.Code(awserr.From(err)); code {
	case "", "Throttling", "ThrottlingException", "RequestLimitExceeded", "InternalFailure", "InternalError",
		"ServiceUnavailable", "IDPCommunicationError",
		"InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch", "IncompleteSignature",
		"MissingAuthenticationToken", "UnrecognizedClientException":
		return false
	}
	return true
}
