package ledger_test

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/resetq/resetq/clock"
	"github.com/resetq/resetq/clock/clocktest"
	"github.com/resetq/resetq/ledger"
)

// fakeAPI is a DynamoDB client with one func per call; a call whose func
// is nil panics.
type fakeAPI struct {
	describeTable    func(*dynamodb.DescribeTableInput) (*dynamodb.DescribeTableOutput, error)
	createTable      func(*dynamodb.CreateTableInput) (*dynamodb.CreateTableOutput, error)
	updateTimeToLive func(*dynamodb.UpdateTimeToLiveInput) (*dynamodb.UpdateTimeToLiveOutput, error)
	updateItem       func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error)
	getItem          func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error)
	transactWrite    func(*dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error)
	query            func(*dynamodb.QueryInput) (*dynamodb.QueryOutput, error)
	batchGetItem     func(*dynamodb.BatchGetItemInput) (*dynamodb.BatchGetItemOutput, error)
}

var _ ledger.API = (*fakeAPI)(nil)

func (f *fakeAPI) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return f.describeTable(in)
}

func (f *fakeAPI) CreateTable(_ context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	return f.createTable(in)
}

func (f *fakeAPI) UpdateTimeToLive(_ context.Context, in *dynamodb.UpdateTimeToLiveInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error) {
	return f.updateTimeToLive(in)
}

func (f *fakeAPI) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if f.updateItem == nil { // the campaign index's write, in tests about something else
		return &dynamodb.UpdateItemOutput{}, nil
	}
	return f.updateItem(in)
}

func (f *fakeAPI) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return f.getItem(in)
}

func (f *fakeAPI) TransactWriteItems(_ context.Context, in *dynamodb.TransactWriteItemsInput, _ ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return f.transactWrite(in)
}

func (f *fakeAPI) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return f.query(in)
}

func (f *fakeAPI) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return f.batchGetItem(in)
}

// pollClock is a fake clock that moves itself: a short timer (a poll's
// wait, a retry's backoff) brings the time to its end at once; a long one
// (a timeout) waits for the short ones to add up to it.
type pollClock struct{ *clocktest.Fake }

// pollShort is the longest timer pollClock lets pass at once.
const pollShort = 10 * time.Second

func newPollClock() pollClock { return pollClock{clocktest.New(t0)} }

func (c pollClock) NewTimer(d time.Duration) clock.Timer {
	tm := c.Fake.NewTimer(d)
	if d <= pollShort {
		c.Advance(d)
	}
	return tm
}
