package moto

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
)

// Password is the permanent password CreateUser gives users (all states
// but Unconfirmed).
const Password = fixturePassword

// CreateAppClient creates an app client of poolID that signs in with
// ADMIN_USER_PASSWORD_AUTH and refreshes tokens, and returns its ID.
func CreateAppClient(ctx context.Context, cfg aws.Config, poolID string) (string, error) {
	out, err := cip.NewFromConfig(cfg).CreateUserPoolClient(ctx, &cip.CreateUserPoolClientInput{
		UserPoolId: aws.String(poolID),
		ClientName: aws.String("resetq-test"),
		ExplicitAuthFlows: []ciptypes.ExplicitAuthFlowsType{
			ciptypes.ExplicitAuthFlowsTypeAllowAdminUserPasswordAuth, ciptypes.ExplicitAuthFlowsTypeAllowRefreshTokenAuth},
	})
	if err != nil {
		return "", fmt.Errorf("create app client of %s: %w", poolID, err)
	}
	return aws.ToString(out.UserPoolClient.ClientId), nil
}

// CreateInvited creates username as an admin would (FORCE_CHANGE_PASSWORD)
// with a verified email and the given temporary password.
func CreateInvited(ctx context.Context, cfg aws.Config, poolID, username, tempPassword string) error {
	_, err := cip.NewFromConfig(cfg).AdminCreateUser(ctx, &cip.AdminCreateUserInput{
		UserPoolId:        aws.String(poolID),
		Username:          aws.String(username),
		TemporaryPassword: aws.String(tempPassword),
		MessageAction:     ciptypes.MessageActionTypeSuppress,
		UserAttributes: []ciptypes.AttributeType{
			{Name: aws.String("email"), Value: aws.String(username + "@example.com")},
			{Name: aws.String("email_verified"), Value: aws.String("true")},
		},
	})
	if err != nil {
		return fmt.Errorf("create invited user %q in %s: %w", username, poolID, err)
	}
	return nil
}

// SignIn signs username in with password (ADMIN_USER_PASSWORD_AUTH). It
// returns the refresh token, or the challenge name when Cognito asks for
// one (NEW_PASSWORD_REQUIRED for an invited user's temporary password).
func SignIn(ctx context.Context, cfg aws.Config, poolID, clientID, username, password string) (refreshToken, challenge string, err error) {
	out, err := cip.NewFromConfig(cfg).AdminInitiateAuth(ctx, &cip.AdminInitiateAuthInput{
		UserPoolId:     aws.String(poolID),
		ClientId:       aws.String(clientID),
		AuthFlow:       ciptypes.AuthFlowTypeAdminUserPasswordAuth,
		AuthParameters: map[string]string{"USERNAME": username, "PASSWORD": password},
	})
	if err != nil {
		return "", "", fmt.Errorf("sign in %q: %w", username, err)
	}
	if out.AuthenticationResult != nil {
		return aws.ToString(out.AuthenticationResult.RefreshToken), "", nil
	}
	return "", string(out.ChallengeName), nil
}

// Refresh trades a refresh token for new tokens (REFRESH_TOKEN_AUTH); it
// fails once the user was signed out.
func Refresh(ctx context.Context, cfg aws.Config, poolID, clientID, refreshToken string) error {
	_, err := cip.NewFromConfig(cfg).AdminInitiateAuth(ctx, &cip.AdminInitiateAuthInput{
		UserPoolId:     aws.String(poolID),
		ClientId:       aws.String(clientID),
		AuthFlow:       ciptypes.AuthFlowTypeRefreshTokenAuth,
		AuthParameters: map[string]string{"REFRESH_TOKEN": refreshToken},
	})
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	return nil
}

// Enabled reports whether the user is enabled.
func Enabled(ctx context.Context, cfg aws.Config, poolID, username string) (bool, error) {
	out, err := cip.NewFromConfig(cfg).AdminGetUser(ctx, &cip.AdminGetUserInput{
		UserPoolId: aws.String(poolID),
		Username:   aws.String(username),
	})
	if err != nil {
		return false, fmt.Errorf("get user %q in %s: %w", username, poolID, err)
	}
	return out.Enabled, nil
}
