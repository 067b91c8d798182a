// Package chaos is resetq's fault suite: end-to-end tests that run
// the built binary against moto_server with the project's fault-injecting
// proxy (internal/awsproxy) in front of both SQS and Cognito (and of
// DynamoDB, for the campaign ledger's scenarios), kill it, starve it and
// disturb its calls, and end every scenario with the same
// ledger check: each job sent is a reset user or exactly one DLQ message
// with a reason, nothing is left in the queue, and duplicate resets are
// counted.
//
// `go test ./internal/chaos` runs the quick profile (part of `make test`);
// RESETQ_CHAOS=full runs the longer one (`make chaos`). RESETQ_CHAOS_SEED
// fixes the seed (logged either way), and RESETQ_CHAOS_REPORT=path writes
// the figures as JSON and prints them as Markdown.
package chaos
