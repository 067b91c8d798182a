package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cip "github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/resetq/resetq/cognito"
	"github.com/resetq/resetq/internal/awsproxy"
	"github.com/resetq/resetq/internal/bench/dynamostub"
	"github.com/resetq/resetq/internal/cognitostub"
	"github.com/resetq/resetq/job"
)

// These tests check scenario 6's plumbing, not its figures: the harness's
// scenarios run only from `make bench`.

// TestPoolFront: through the front, the worker learns the pool compares
// names in any case (DescribeUserPool, as cognito.Pools reads it), and its
// other calls reach the stand-in.
func TestPoolFront(t *testing.T) {
	t.Parallel()
	stub, err := cognitostub.Start(cognitostub.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer stub.Close()
	front, err := startPoolFront(stub.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(front.url),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	sensitive, err := cognito.NewPools(cfg).CaseSensitive(t.Context(), pool)
	if err != nil || sensitive {
		t.Errorf("CaseSensitive through the front: %v, %v; want false, nil", sensitive, err)
	}
	out, err := cip.NewFromConfig(cfg).AdminGetUser(context.Background(), &cip.AdminGetUserInput{UserPoolId: aws.String(pool), Username: aws.String("u1")})
	if err != nil || out.UserStatus != "CONFIRMED" {
		t.Errorf("AdminGetUser through the front: %v, %v; want CONFIRMED from the stand-in", out, err)
	}
	if got := stub.Stats().GetUser; got != 1 {
		t.Errorf("the stand-in served %d AdminGetUser calls, want 1", got)
	}
}

// TestProcessEnv: a scenario's variables come after the standard ones, so
// they replace them (exec.Cmd keeps the last of a name).
func TestProcessEnv(t *testing.T) {
	t.Parallel()
	w := &world{dir: t.TempDir(), proxy: &awsproxy.Server{URL: "http://sqs"}, stub: &cognitostub.Server{URL: "http://stub"}}
	w.env = []string{"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=http://front", "AWS_ENDPOINT_URL_DYNAMODB=http://dynamo"}
	env := w.processEnv()
	cog := slices.Index(env, "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=http://stub")
	front := slices.Index(env, "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=http://front")
	if cog < 0 || front < cog || !slices.Contains(env, "AWS_ENDPOINT_URL_DYNAMODB=http://dynamo") {
		t.Errorf("env %v: want the scenario's endpoints after the standard ones", env)
	}
}

// TestCompareLedger: a run with the ledger is judged by its rate against
// the run without, within 2% either way; a run that shows the limit is
// not judged.
func TestCompareLedger(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		base, rate float64
		baseErr    string
		target     string // set before: a limit row
		wantPrefix string
		wantOf     float64
	}{
		{"the same", 29.4, 29.4, "", "", "met", 1},
		{"1.5% slower", 30, 29.55, "", "", "met", 0.985},
		{"3% slower", 30, 29.1, "", "", "missed: rate 0.970", 0.97},
		{"3% faster", 30, 30.9, "", "", "missed: rate 1.030", 1.03},
		{"no base", 0, 29, "", "", "missed: no rate", 0},
		{"the base failed", 30, 29, "boom", "", "error (the run without", 0},
		{"the limit", 30, 22, "", "n/a (shows the limit)", "n/a (shows the limit)", 22.0 / 30},
	} {
		base := &row{Rate: c.base, Error: c.baseErr}
		r := &row{Rate: c.rate, Target: c.target}
		r.compareLedger(base)
		if !strings.HasPrefix(r.Target, c.wantPrefix) {
			t.Errorf("%s: target %q, want %q...", c.name, r.Target, c.wantPrefix)
		}
		if d := r.OfNoLedger - c.wantOf; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: %v of the rate without, want %v", c.name, r.OfNoLedger, c.wantOf)
		}
	}
}

// TestLedgerStats: calls per reset from the stand-in, and a run whose
// resets the ledger did not all record is an error.
func TestLedgerStats(t *testing.T) {
	t.Parallel()
	r := &row{Resets: 100}
	r.ledgerStats(dynamostub.Stats{Calls: map[string]int{"UpdateItem": 100, "GetItem": 100, "TransactWriteItems": 100, "DescribeTable": 2}, PeakInFlight: 3}, 150)
	if r.LedgerPerReset != 3.02 || r.LedgerPeak != 3 || r.LedgerItems != 150 || r.Error != "" {
		t.Errorf("row %+v: want 3.02 calls a reset, peak 3, 150 items, no error", r)
	}
	short := &row{Resets: 100}
	short.ledgerStats(dynamostub.Stats{Calls: map[string]int{"TransactWriteItems": 90}}, 0)
	if !strings.Contains(short.Error, "recorded 90 resets of 100") {
		t.Errorf("error %q: want the resets the ledger missed", short.Error)
	}
}

// TestProfilesRunLedger: each profile that runs scenario 6 says how.
func TestProfilesRunLedger(t *testing.T) {
	t.Parallel()
	for name, p := range profiles {
		if !slices.Contains(p.scenarios, "6") {
			continue
		}
		if p.ledgerJobs <= 0 || len(p.ledgerRuns) == 0 {
			t.Errorf("profile %s runs scenario 6 with %d jobs and %d runs", name, p.ledgerJobs, len(p.ledgerRuns))
		}
		for _, r := range p.ledgerRuns {
			if r.concurrency < 1 || r.latency.Latency <= 0 {
				t.Errorf("profile %s: run %+v needs a concurrency and a latency", name, r)
			}
		}
	}
}

// TestJobAttributes: scenario 6's jobs carry a campaign (the worker keeps
// jobs without one out of the ledger); the other scenarios' carry none.
func TestJobAttributes(t *testing.T) {
	t.Parallel()
	w := &world{}
	if got := w.jobAttributes(); got != nil {
		t.Errorf("no campaign: attributes %v, want none", got)
	}
	w.campaign = ledgerCampaign
	got := w.jobAttributes()[job.AttrCampaign]
	if aws.ToString(got.StringValue) != ledgerCampaign || aws.ToString(got.DataType) != "String" {
		t.Errorf("campaign attribute %+v, want String %q", got, ledgerCampaign)
	}
}
