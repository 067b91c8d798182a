package ledger

import (
	"context"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The campaign index: one item per campaign under a partition key no
// campaign's row or counter can have (theirs are CAMPAIGN#rNN, #cNN), so
// status can name the campaigns without being told.
const (
	indexPK        = "#campaigns"
	attrFirstEnq   = "first_enqueued_at"
	attrLastEnq    = "last_enqueued_at"
	campaignsLimit = 100 // the newest a listing returns
)

// Campaign is one campaign of the index.
type Campaign struct {
	Name                        string
	FirstEnqueued, LastEnqueued time.Time
}

// noteCampaign records in the index that campaign was enqueued at now.
func (l *Ledger) noteCampaign(ctx context.Context, campaign string, now time.Time) error {
	u := l.counterUpdate(campaign, now)
	u.setFirst(attrFirstEnq, millis(now))
	u.set(attrLastEnq, millis(now))
	key := map[string]types.AttributeValue{attrPK: str(indexPK), attrSK: str(campaign)}
	err := l.try(ctx, func(ctx context.Context) error {
		_, err := l.api.UpdateItem(ctx, l.updateItem(key, u))
		return err
	})
	if err != nil {
		return l.fail(iamUpdateItem, err)
	}
	return nil
}

// Campaigns lists the campaigns enqueue recorded, the most recently
// enqueued first (at most the newest 100).
func (l *Ledger) Campaigns(ctx context.Context) ([]Campaign, error) {
	var out []Campaign
	in := &dynamodb.QueryInput{
		TableName:                 &l.cfg.Table,
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(indexPK)},
		ConsistentRead:            aws.Bool(true),
	}
	for {
		var page *dynamodb.QueryOutput
		err := l.try(ctx, func(ctx context.Context) error {
			var err error
			page, err = l.api.Query(ctx, in)
			return err
		})
		if err != nil {
			return nil, l.fail(iamQuery, err)
		}
		for _, item := range page.Items {
			out = append(out, Campaign{Name: getS(item, attrSK), FirstEnqueued: getTime(item, attrFirstEnq), LastEnqueued: getTime(item, attrLastEnq)})
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	slices.SortFunc(out, func(a, b Campaign) int { return b.LastEnqueued.Compare(a.LastEnqueued) })
	if len(out) > campaignsLimit {
		out = out[:campaignsLimit]
	}
	return out, nil
}
