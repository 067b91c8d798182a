package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/resetq/resetq/internal/moto"
)

// tempPassword is the temporary password invited users get, as leaked.
const tempPassword = "Invite-Passw0rd!"

// accepted is a credential's fate when Cognito takes it.
const accepted = "accepted"

// signIn plays the attacker before the campaign: an app client per pool,
// every user with a signedIn kind signed in with its password (its refresh
// token kept in its job and checked to work), and every invited user's
// temporary password checked to work (NEW_PASSWORD_REQUIRED).
func signIn(ctx context.Context, jobs []*demoJob) error {
	t0 := time.Now()
	for _, p := range plans {
		id, err := moto.CreateAppClient(ctx, p.cfg, p.poolID)
		if err != nil {
			return err
		}
		p.clientID = id
	}
	var sessions, invited int
	for _, j := range jobs {
		switch {
		case kindInfo[j.kind].signedIn:
			sessions++
		case j.kind == kindInvited:
			invited++
		}
	}
	err := parallel(ctx, 8, len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		switch {
		case kindInfo[j.kind].signedIn:
			tok, _, err := moto.SignIn(ctx, j.pool.cfg, j.pool.poolID, j.pool.clientID, j.user, moto.Password)
			if err != nil {
				return err
			}
			if tok == "" {
				return fmt.Errorf("sign in %s/%s: no refresh token", j.pool.poolID, j.user)
			}
			if err := moto.Refresh(ctx, j.pool.cfg, j.pool.poolID, j.pool.clientID, tok); err != nil {
				return fmt.Errorf("%s/%s's refresh token before the campaign: %w", j.pool.poolID, j.user, err)
			}
			j.refresh = tok
		case j.kind == kindInvited:
			fate, err := signInTemp(ctx, j)
			if err != nil {
				return err
			}
			if fate != accepted {
				return fmt.Errorf("invited %s/%s: temporary password %s before the campaign", j.pool.poolID, j.user, fate)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("before the campaign: %w", err)
	}
	fmt.Printf("sessions      %d users signed in, refresh tokens kept; %d invited users' temporary passwords work (%.1fs)\n",
		sessions, invited, time.Since(t0).Seconds())
	return nil
}

// signInTemp tries an invited user's old temporary password: accepted (a
// challenge or tokens), or the error code refusing it.
func signInTemp(ctx context.Context, j *demoJob) (string, error) {
	_, _, err := moto.SignIn(ctx, j.pool.cfg, j.pool.poolID, j.pool.clientID, j.user, tempPassword)
	return fate(err)
}

// userAfter is what moto says of a job's user after the campaign.
type userAfter struct {
	status  string // AdminGetUser's UserStatus
	enabled bool
	refresh string // signedIn kinds: the old refresh token's fate, accepted or an error code
	oldTemp string // invited users: the old temporary password's fate, accepted or an error code
}

// readUsers reads the state of every job's user from moto; missing users
// and malformed jobs get a zero userAfter.
func readUsers(ctx context.Context, jobs []*demoJob) ([]userAfter, error) {
	after := make([]userAfter, len(jobs))
	err := parallel(ctx, 8, len(jobs), func(ctx context.Context, i int) error {
		j, a := jobs[i], &after[i]
		if j.pool == nil || j.kind == kindMissing {
			return nil
		}
		u, err := cip.NewFromConfig(j.pool.cfg).AdminGetUser(ctx, &cip.AdminGetUserInput{
			UserPoolId: aws.String(j.pool.poolID),
			Username:   aws.String(j.user),
		})
		if err != nil {
			return fmt.Errorf("get user %s/%s: %w", j.pool.poolID, j.user, err)
		}
		a.status, a.enabled = string(u.UserStatus), u.Enabled
		if j.refresh != "" {
			if a.refresh, err = fate(moto.Refresh(ctx, j.pool.cfg, j.pool.poolID, j.pool.clientID, j.refresh)); err != nil {
				return fmt.Errorf("%s/%s's refresh token: %w", j.pool.poolID, j.user, err)
			}
		}
		if j.kind == kindInvited {
			if a.oldTemp, err = signInTemp(ctx, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the users from moto: %w", err)
	}
	return after, nil
}

// fate turns a sign-in's error into accepted or the API's error code; an
// error without a code (the emulator unreachable) is returned.
func fate(err error) (string, error) {
	if err == nil {
		return accepted, nil
	}
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		return api.ErrorCode(), nil
	}
	return "", err
}
