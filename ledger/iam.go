package ledger

// The IAM actions of the ledger's DynamoDB calls, each granted on the
// table's ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE). docs/ledger.md
// says which command needs which; deploy/iam's policies are checked
// against these lists.
var (
	// IAMActions is every action the ledger may need: one per method of
	// API, TransactWriteItems authorized as dynamodb:UpdateItem.
	IAMActions = []string{iamDescribe, iamCreateTable, iamUpdateTTL, iamUpdateItem, iamGetItem, iamQuery, iamBatchGet}
	// IAMCreateActions are the actions a writer's Ensure needs beyond
	// IAMActionsByMethod["Ensure"] when the table is missing; leave them
	// out where the deployment makes the table.
	IAMCreateActions = []string{iamCreateTable, iamUpdateTTL}
	// IAMActionsByMethod is the actions each method of Ledger that calls
	// DynamoDB needs, Ensure's for a table that exists.
	IAMActionsByMethod = map[string][]string{
		"Ensure":    {iamDescribe},
		"Enqueued":  {iamUpdateItem},
		"Claim":     {iamUpdateItem, iamGetItem},
		"TakeOver":  {iamUpdateItem, iamGetItem},
		"Release":   {iamUpdateItem},
		"Record":    {iamUpdateItem, iamGetItem},
		"Rows":      {iamQuery},
		"Progress":  {iamBatchGet},
		"Campaigns": {iamQuery},
		"Get":       {iamGetItem},
		// A worker's record of its calls (CallRecords), beside its claims.
		"CallRecords.Save": {iamUpdateItem},
		"CallRecords.Load": {iamQuery},
	}
)
