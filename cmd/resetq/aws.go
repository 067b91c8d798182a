package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/resetq/resetq/awserr"
	"github.com/resetq/resetq/queue"
)

// idleConnsPerHost is how many idle connections each AWS endpoint keeps
// open: the SDK's default, 10, is under the calls in flight of a campaign
// (--concurrency 16 and more, each call with a ledger write beside it), so
// connections were closed and opened again by the thousand (a TLS
// handshake each on AWS; docs/benchmarks.md, scenario 7).
const idleConnsPerHost = 256

// loadConfig loads the SDK's standard configuration chain (environment,
// profiles, SSO, IRSA, the instance role; AWS_ENDPOINT_URL_*): the one
// place resetq loads it.
func loadConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = idleConnsPerHost
		t.MaxIdleConns = 4 * idleConnsPerHost
	})))
	if err != nil {
		return cfg, usagef("load AWS configuration: %v", err)
	}
	return cfg, nil
}

// loadAWS loads the SDK's configuration and an SQS client for the Region
// of queueURL (its host's Region for AWS URLs, else AWS_REGION).
func loadAWS(ctx context.Context, queueURL string) (aws.Config, queue.Client, error) {
	cfg, err := loadConfig(ctx)
	if err != nil {
		return cfg, nil, err
	}
	region := regionOfQueueURL(queueURL, cfg.Region)
	if region == "" {
		return cfg, nil, usagef("no AWS Region for SQS: set AWS_REGION (or use a queue URL of the form https://sqs.REGION.amazonaws.com/...)")
	}
	return cfg, queue.NewClient(cfg, region), nil
}

// checkQueueURLs is a usage error unless every non-empty u looks like a
// queue URL.
func checkQueueURLs(urls ...string) error {
	for _, u := range urls {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
			return usagef("%q is not a queue URL", u)
		}
	}
	return nil
}

var sqsHostRegion = regexp.MustCompile(`^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)

// regionOfQueueURL is the Region in an AWS queue URL's host, else fallback.
func regionOfQueueURL(queueURL, fallback string) string {
	if u, err := url.Parse(queueURL); err == nil {
		if m := sqsHostRegion.FindStringSubmatch(u.Hostname()); m != nil {
			return m[1]
		}
	}
	return fallback
}

// startupError makes a queue that does not exist or may not be read a
// configuration error (exit 2); anything else is a runtime failure.
func startupError(what string, err error) error {
	if startupUsageCode(awserr.Code(err)) {
		return usagef("%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// startupUsageCode reports whether code says the queue does not exist or
// may not be read: a configuration error.
func startupUsageCode(code string) bool {
	switch code {
	case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "AccessDenied", "AccessDeniedException",
		"InvalidAddress", "InvalidClientTokenId", "UnrecognizedClientException":
		return true
	}
	return false
}
