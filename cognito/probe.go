package cognito

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/smithy-go"

	"github.com/resetq/resetq/ops"
)

var _ ops.Prober = (*Pools)(nil)

// ProbeUserPrefix starts the username of every probe call; 16 random hex
// digits follow, so no probe names a user that exists.
const ProbeUserPrefix = "resetq-preflight-"

// Probe makes one call of operation (an ops.Op* name) on pool for a user
// that cannot exist, to learn whether the credentials may make it; nothing
// changes in the pool (AdminCreateUser is asked to RESEND, which creates no
// user). The answer is translated: ops.ErrUserNotFound (permitted), an
// *ops.DeniedError, ops.ErrPoolNotFound, ops.ErrPasswordRefused, or another
// *ops.CallError, after the SDK's default retries.
func (p *Pools) Probe(ctx context.Context, pool, operation string) error {
	user, err := probeUsername()
	if err != nil {
		return err
	}
	return probeError(operation, probe(ctx, p.client(pool), pool, operation, user))
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
	case ops.OpResetPassword:
		_, err = api.AdminResetUserPassword(ctx, &cip.AdminResetUserPasswordInput{UserPoolId: id, Username: name})
	case ops.OpGetUser:
		_, err = api.AdminGetUser(ctx, &cip.AdminGetUserInput{UserPoolId: id, Username: name})
	case ops.OpSetPassword:
		pw, perr := RandomPassword()
		if perr != nil {
			return perr
		}
		_, err = api.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{UserPoolId: id, Username: name, Password: aws.String(pw), Permanent: true})
	case ops.OpGlobalSignOut:
		_, err = api.AdminUserGlobalSignOut(ctx, &cip.AdminUserGlobalSignOutInput{UserPoolId: id, Username: name})
	case ops.OpCreateUser:
		_, err = api.AdminCreateUser(ctx, &cip.AdminCreateUserInput{UserPoolId: id, Username: name, MessageAction: types.MessageActionTypeResend})
	case ops.OpDisableUser:
		_, err = api.AdminDisableUser(ctx, &cip.AdminDisableUserInput{UserPoolId: id, Username: name})
	default:
		return fmt.Errorf("no probe for operation %q", operation)
	}
	return err
}

// probeError translates a probe's error into the ops error values.
func probeError(operation string, err error) error {
	var apiErr smithy.APIError
	if err == nil || !errors.As(err, &apiErr) {
		return err
	}
	ce := &ops.CallError{Code: apiErr.ErrorCode(), Message: apiErr.ErrorMessage()}
	switch ce.Code {
	case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation":
		return &ops.DeniedError{Action: "cognito-idp:" + operation, Err: ce}
	case "UserNotFoundException":
		ce.Kind = ops.ErrUserNotFound
	case "ResourceNotFoundException":
		ce.Kind = ops.ErrPoolNotFound
	case "InvalidPasswordException":
		ce.Kind = ops.ErrPasswordRefused
	}
	return ce
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
