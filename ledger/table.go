package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/retry"
)

// pollDelay spaces the DescribeTable calls while a new table is created.
var pollDelay = retry.Curve{Base: time.Second, Max: 5 * time.Second}

// Ensure makes sure the table exists, has the ledger's keys and is ACTIVE.
// A missing table is created (on-demand capacity, deletion protection, TTL
// on expires_at) unless Config.ReadOnly; when several processes create it
// at once, one does and the others wait for it. A table that already
// exists is used as it is.
func (l *Ledger) Ensure(ctx context.Context) error {
	desc, err := l.describe(ctx)
	switch {
	case err == nil && desc.TableStatus == types.TableStatusActive:
		return l.checkKeys(desc)
	case err == nil:
		_, err = l.waitActive(ctx)
		return err
	case !errors.Is(err, ErrNoTable):
		return err
	case l.cfg.ReadOnly:
		return fmt.Errorf("%w (enqueue and work create it)", err)
	}
	created, err := l.create(ctx)
	if err != nil {
		return err
	}
	if _, err := l.waitActive(ctx); err != nil {
		return err
	}
	if created {
		return l.enableTTL(ctx)
	}
	return nil // the process that created it enables its TTL
}

func (l *Ledger) describe(ctx context.Context) (*types.TableDescription, error) {
	out, err := l.api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &l.cfg.Table})
	if err != nil {
		return nil, l.fail(iamDescribe, err)
	}
	if out.Table == nil {
		return nil, fmt.Errorf("ledger table %s: DescribeTable answered no table", l.cfg.Table)
	}
	return out.Table, nil
}

// create creates the table; false when another process created it first.
func (l *Ledger) create(ctx context.Context) (bool, error) {
	_, err := l.api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: &l.cfg.Table,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode:               types.BillingModePayPerRequest,
		DeletionProtectionEnabled: aws.Bool(true),
	})
	if awserr.Code(awserr.From(err)) == "ResourceInUseException" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create the ledger table (or create it as docs/ledger.md says): %w", l.fail(iamCreateTable, err))
	}
	return true, nil
}

// waitActive polls the table until it is ACTIVE, for at most
// Config.CreateTimeout, and checks its keys.
func (l *Ledger) waitActive(ctx context.Context) (*types.TableDescription, error) {
	timeout := l.cfg.Clock.NewTimer(l.cfg.CreateTimeout)
	defer timeout.Stop()
	for attempt := 1; ; attempt++ {
		desc, err := l.describe(ctx)
		switch {
		case err == nil && desc.TableStatus == types.TableStatusActive:
			return desc, l.checkKeys(desc)
		case err == nil && desc.TableStatus != types.TableStatusCreating && desc.TableStatus != types.TableStatusUpdating:
			return nil, fmt.Errorf("ledger table %s is %s", l.cfg.Table, desc.TableStatus)
		case err != nil && !errors.Is(err, ErrNoTable): // just created, it may not be seen at once
			return nil, err
		}
		wait := l.cfg.Clock.NewTimer(pollDelay.Delay(attempt, l.cfg.Rand()))
		select {
		case <-wait.C():
		case <-timeout.C():
			wait.Stop()
			return nil, fmt.Errorf("ledger table %s: not ACTIVE after %s", l.cfg.Table, l.cfg.CreateTimeout)
		case <-ctx.Done():
			wait.Stop()
			return nil, ctx.Err()
		}
	}
}

// checkKeys refuses a table whose keys are not the ledger's.
func (l *Ledger) checkKeys(desc *types.TableDescription) error {
	kinds := map[string]types.ScalarAttributeType{}
	for _, a := range desc.AttributeDefinitions {
		kinds[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	var got []string
	for _, k := range desc.KeySchema {
		name := aws.ToString(k.AttributeName)
		got = append(got, fmt.Sprintf("%s %s %s", name, k.KeyType, kinds[name]))
	}
	if want := []string{"pk HASH S", "sk RANGE S"}; strings.Join(got, ", ") != strings.Join(want, ", ") {
		return fmt.Errorf("ledger table %s has keys (%s), not the ledger's (%s): another table of that name?",
			l.cfg.Table, strings.Join(got, ", "), strings.Join(want, ", "))
	}
	return nil
}

// enableTTL turns on expiry by expires_at.
func (l *Ledger) enableTTL(ctx context.Context) error {
	_, err := l.api.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               &l.cfg.Table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attrExpires), Enabled: aws.Bool(true)},
	})
	if e, ok := awserr.As(awserr.From(err)); ok && e.Code == "ValidationException" && strings.Contains(strings.ToLower(e.Message), "already enabled") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("created the ledger table, but its rows will not expire: %w", l.fail(iamUpdateTTL, err))
	}
	return nil
}
