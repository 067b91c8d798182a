package moto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"
	ciptypes "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// UserState is the state CreateUser leaves a user in. Each state gives a
// different AdminResetUserPassword result in moto (and in Cognito).
type UserState int

const (
	// Confirmed has a permanent password and email_verified=true:
	// AdminResetUserPassword succeeds and the user becomes RESET_REQUIRED.
	Confirmed UserState = iota
	// ConfirmedNoContact is CONFIRMED without a verified email or phone:
	// AdminResetUserPassword fails with InvalidParameterException.
	ConfirmedNoContact
	// Unconfirmed is what AdminCreateUser leaves (FORCE_CHANGE_PASSWORD),
	// with a verified email: AdminResetUserPassword fails with
	// NotAuthorizedException "User password cannot be reset in the current state.".
	Unconfirmed
	// Disabled is Confirmed, then AdminDisableUser: AdminResetUserPassword
	// fails with NotAuthorizedException "User is disabled".
	Disabled
)

// String returns the state's Go name.
func (st UserState) String() string {
	switch st {
	case Confirmed:
		return "Confirmed"
	case ConfirmedNoContact:
		return "ConfirmedNoContact"
	case Unconfirmed:
		return "Unconfirmed"
	case Disabled:
		return "Disabled"
	}
	return "UserState(" + strconv.Itoa(int(st)) + ")"
}

// fixturePassword satisfies Cognito's default password policy.
const fixturePassword = "Fixture-Passw0rd!"

// CreatePool creates a user pool named name that recovers accounts by
// verified email and auto-verifies email. The pool ID starts with
// cfg.Region, e.g. "us-east-1_...".
func CreatePool(ctx context.Context, cfg aws.Config, name string) (poolID string, err error) {
	out, err := cip.NewFromConfig(cfg).CreateUserPool(ctx, &cip.CreateUserPoolInput{
		PoolName:               aws.String(name),
		AutoVerifiedAttributes: []ciptypes.VerifiedAttributeType{ciptypes.VerifiedAttributeTypeEmail},
		AccountRecoverySetting: &ciptypes.AccountRecoverySettingType{
			RecoveryMechanisms: []ciptypes.RecoveryOptionType{{
				Name:     ciptypes.RecoveryOptionNameTypeVerifiedEmail,
				Priority: aws.Int32(1),
			}},
		},
	})
	if err != nil {
		return "", fmt.Errorf("create user pool %q: %w", name, err)
	}
	id := aws.ToString(out.UserPool.Id)
	if !strings.HasPrefix(id, cfg.Region+"_") {
		return "", fmt.Errorf("create user pool %q: ID %q lacks Region prefix %q", name, id, cfg.Region)
	}
	return id, nil
}

// CreateUser creates username in poolID and brings it into state st. Users
// in every state but ConfirmedNoContact get a verified email: username itself
// when it contains "@", else username@example.com. No invitation is sent.
func CreateUser(ctx context.Context, cfg aws.Config, poolID, username string, st UserState) error {
	if st < Confirmed || st > Disabled {
		return fmt.Errorf("create user %q: unknown state %v", username, st)
	}
	client := cip.NewFromConfig(cfg)
	var attrs []ciptypes.AttributeType
	if st != ConfirmedNoContact {
		email := username
		if !strings.Contains(email, "@") {
			email += "@example.com"
		}
		attrs = []ciptypes.AttributeType{
			{Name: aws.String("email"), Value: aws.String(email)},
			{Name: aws.String("email_verified"), Value: aws.String("true")},
		}
	}
	_, err := client.AdminCreateUser(ctx, &cip.AdminCreateUserInput{
		UserPoolId:     aws.String(poolID),
		Username:       aws.String(username),
		UserAttributes: attrs,
		MessageAction:  ciptypes.MessageActionTypeSuppress,
	})
	// A loaded moto can answer late enough that the SDK retries a create
	// that went through: the user is there, as asked.
	var exists *ciptypes.UsernameExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("create user %q in %s: %w", username, poolID, err)
	}
	if st == Unconfirmed {
		return nil
	}
	_, err = client.AdminSetUserPassword(ctx, &cip.AdminSetUserPasswordInput{
		UserPoolId: aws.String(poolID),
		Username:   aws.String(username),
		Password:   aws.String(fixturePassword),
		Permanent:  true,
	})
	if err != nil {
		return fmt.Errorf("confirm user %q in %s: %w", username, poolID, err)
	}
	if st != Disabled {
		return nil
	}
	_, err = client.AdminDisableUser(ctx, &cip.AdminDisableUserInput{
		UserPoolId: aws.String(poolID),
		Username:   aws.String(username),
	})
	if err != nil {
		return fmt.Errorf("disable user %q in %s: %w", username, poolID, err)
	}
	return nil
}

// UserStatus returns the user's status from AdminGetUser, e.g. "CONFIRMED",
// "FORCE_CHANGE_PASSWORD" or "RESET_REQUIRED".
func UserStatus(ctx context.Context, cfg aws.Config, poolID, username string) (string, error) {
	out, err := cip.NewFromConfig(cfg).AdminGetUser(ctx, &cip.AdminGetUserInput{
		UserPoolId: aws.String(poolID),
		Username:   aws.String(username),
	})
	if err != nil {
		return "", fmt.Errorf("get user %q in %s: %w", username, poolID, err)
	}
	return string(out.UserStatus), nil
}

// CreateQueues creates a standard dead-letter queue named name+"-dlq" and a
// standard queue named name whose RedrivePolicy moves a message to the DLQ
// after maxReceiveCount receives, with the given visibility timeout (whole
// seconds, 0 to 12 h).
func CreateQueues(ctx context.Context, cfg aws.Config, name string, maxReceiveCount int, visibility time.Duration) (queueURL, dlqURL string, err error) {
	if maxReceiveCount < 1 {
		return "", "", fmt.Errorf("create queues %q: maxReceiveCount %d < 1", name, maxReceiveCount)
	}
	if visibility < 0 || visibility > 12*time.Hour {
		return "", "", fmt.Errorf("create queues %q: visibility %v outside 0-12h", name, visibility)
	}
	client := sqs.NewFromConfig(cfg)
	dlqName := name + "-dlq"
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(dlqName)})
	if err != nil {
		return "", "", fmt.Errorf("create queue %q: %w", dlqName, err)
	}
	dlqURL = aws.ToString(dlq.QueueUrl)
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(dlqURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", fmt.Errorf("get ARN of queue %q: %w", dlqName, err)
	}
	redrive, err := json.Marshal(map[string]string{
		"deadLetterTargetArn": attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)],
		"maxReceiveCount":     strconv.Itoa(maxReceiveCount),
	})
	if err != nil {
		return "", "", fmt.Errorf("encode redrive policy for %q: %w", name, err)
	}
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameRedrivePolicy):     string(redrive),
			string(sqstypes.QueueAttributeNameVisibilityTimeout): strconv.Itoa(int(visibility / time.Second)),
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("create queue %q: %w", name, err)
	}
	return aws.ToString(q.QueueUrl), dlqURL, nil
}
