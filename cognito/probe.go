package cognito

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/userpool"
)

// ProbeUserPrefix starts the username of every probe call; 16 random hex
// digits follow, so no probe names a user that exists.
const ProbeUserPrefix = "resetq-preflight-"

// Probe makes one call of operation (a userpool.Op* name) on pool for a
// user that cannot exist, to learn whether the credentials may make it;
// nothing changes in the pool (AdminCreateUser is asked to RESEND, which
// creates no user). It is preflight's Prober. The answer is translated,
// after the SDK's default retries: awserr.ErrUserNotFound (permitted), an
// *awserr.DeniedError, awserr.ErrPoolNotFound, awserr.ErrPasswordRefused,
// or another service error (awserr.Code), each reading "Code: Message".
func (p *Pools) Probe(ctx context.Context, pool, operation string) error {
	user, err := probeUsername()
	if err != nil {
		return err
	}
	return probeError(operation, probe(ctx, p.client(ctx, pool), pool, operation, user))
}

// probeAPI is the part of the Cognito client that a probe calls.
type probeAPI interface {
	AdminResetUserPassword(context.Context, *cip.AdminResetUserPasswordInput, ...func(*cip.Options)) (*cip.AdminResetUserPasswordOutput, error)
	AdminGetUser(context.Context, *cip.AdminGetUserInput, ...func(*cip.Options)) (*cip.AdminGetUserOutput, error)
	AdminSetUserPassword(context.Context, *cip.AdminSetUserPasswordInput, ...func(*cip.Options)) (*cip.AdminSetUserPasswordOutput, error)
	AdminUserGlobalSignOut(context.Context, *cip.AdminUserGlobalSignOutInput, ...func(*cip.Options)) (*cip.AdminUserGlobalSignOutOutput, error)
	AdminCreateUser(context.Context, *cip.AdminCreateUserInput, ...func(*cip.Options)) (*cip.AdminCreateUserOutput, error)
	AdminDisableUser(context.Context, *cip.AdminDisableUserInput, ...func(*cip.Options)) (*cip.AdminDisableUserOutput, error)
}

func probe(ctx context.Context, api probeAPI, pool, operation, user string) error {
	id, name := aws.String(pool), aws.String(user)
	var err error
	switch operation {
	case userpool.OpResetPassword:
		_, err = api.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{UserPoolId: id, Username: name})
	case userpool.OpGetUser:
		_, err = api.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: id, Username: name})
	case userpool.OpSetPassword:
		pw, perr := RandomPassword()
		if perr != nil {
			return perr
		}
		_, err = api.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: id, Username: name, Password: aws.String(pw), Permanent: true})
	case userpool.OpGlobalSignOut:
		_, err = api.AdminUserGlobalSignOut(ctx, &cip.AdminUserGlobalSignOutInput{UserPoolId: id, Username: name})
	case userpool.OpCreateUser:
		_, err = api.AdminCreateUser(ctx, &cip.AdminCreateUserInput{UserPoolId: id, Username: name, MessageAction: types.MessageActionTypeResend})
	case userpool.OpDisableUser:
		_, err = api.AdminDisableUser(ctx, &cip.AdminDisableUserInput{UserPoolId: id, Username: name})
	default:
		return fmt.Errorf("no probe for operation %q", operation)
	}
	return err
}

// probeError translates a probe's error into awserr's values.
func probeError(operation string, err error) error {
	e, ok := awserr.As(awserr.From(err))
	if !ok {
		return err
	}
	a := &probeAnswer{aws: e}
	switch {
	case awserr.Denied(e.Code):
		return &awserr.DeniedError{Action: "cognito-idp:" + operation, Err: a}
	case e.Code == "UserNotFoundException":
		a.kind = awserr.ErrUserNotFound
	case e.Code == "ResourceNotFoundException":
		a.kind = awserr.ErrPoolNotFound
	case e.Code == "InvalidPasswordException":
		a.kind = awserr.ErrPasswordRefused
	}
	return a
}

// probeAnswer is a probe's AWS error, short as preflight shows it ("Code:
// Message"): the service's answer, and what it means when resetq knows
// (kind).
type probeAnswer struct {
	aws  *awserr.Error
	kind error
}

func (a *probeAnswer) Error() string { return a.aws.Code + ": " + a.aws.Message }

func (a *probeAnswer) Unwrap() []error {
	if a.kind == nil {
		return []error{a.aws}
	}
	return []error{a.kind, a.aws}
}

func probeUsername() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return ProbeUserPrefix + hex.EncodeToString(b), nil
}

// Password alphabets: Cognito's symbols are ^$*.[]{}()?"!@#%&/\,><':;|_~`=+-
// and space; these avoid space, quotes and backslash.
const (
	upper   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lower   = "abcdefghijklmnopqrstuvwxyz"
	digits  = "0123456789"
	symbols = "^$*.[]{}()?!@#%&/,><:;|_~=+-"
)

// RandomPasswordLength is 98 characters: at least any MinimumLength a
// pool's policy asks but the highest (99), and under the 99 moto takes
// (Cognito itself takes 256). 98 characters from 90 carry about 636 bits.
// LongPasswordLength is what a kill tries when a pool refuses that.
const (
	RandomPasswordLength = 98
	LongPasswordLength   = 128
)

// RandomPassword is a password of RandomPasswordLength characters from a
// cryptographic source with at least one upper and one lower case letter,
// digit and symbol, so it satisfies any Cognito password policy.
func RandomPassword() (string, error) { return randomPassword(RandomPasswordLength) }

func randomPassword(n int) (string, error) {
	sets := []string{upper, lower, digits, symbols}
	all := upper + lower + digits + symbols
	pw := make([]byte, n)
	for i := range pw {
		set := all
		if i < len(sets) {
			set = sets[i]
		}
		c, err := pick(set)
		if err != nil {
			return "", err
		}
		pw[i] = c
	}
	// Shuffle, so the required classes are not always first.
	for i := len(pw) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", err
		}
		pw[i], pw[j.Int64()] = pw[j.Int64()], pw[i]
	}
	return string(pw), nil
}

func pick(set string) (byte, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
	if err != nil {
		return 0, err
	}
	return set[n.Int64()], nil
}
