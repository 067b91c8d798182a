package ledger_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/resetq/resetq/internal/bench/dynamostub"
	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/ledger"
	"github.com/resetq/resetq/worker"
)

// The ledger's cost per job, as the worker pays it: ForWorker.Claim (an
// UpdateItem, then the consistent GetItem that confirms it) before the
// reset, and Record(reset) after it (one TransactWriteItems: the row and
// its counter). docs/benchmarks.md has the figures:
//
//	go test -run '^$' -bench 'Ledger' -benchmem ./ledger
//
// Each level adds a layer: fake-api is the ledger's own work (expressions,
// decoding) against a fake that answers at once; sdk-in-memory adds the
// SDK's (serialization, signing, middleware, deserialization) with an HTTP
// client that answers from memory; http-standin adds loopback HTTP and
// internal/bench/dynamostub in this process (its CPU is in cpu-ns/op);
// http-standin-5ms-10ms is the same answering after DynamoDB-like
// latencies, so ns/op is the latency a job waits for the ledger; http-moto
// is moto_server in its own process (client CPU only in cpu-ns/op), on a
// small table and on one of 3,000 rows (moto copies the table in every
// transaction). calls/op counts the HTTP calls; cpu-ns/op is this process's
// user + system time (getrusage), GC included.

// benchHolder is the job ID every benchmark claim is made for.
const benchHolder = "bench-job"

// benchPool is the benchmarks' user pool.
const benchPool = "us-east-1_bench"

// benchCampaign is the benchmarks' campaign.
const benchCampaign = "bench"

// benchLatency is DynamoDB's latency in the benchmarks that add one: a
// single-item call, and a transaction.
var benchLatency = dynamostub.Config{Latency: 5 * time.Millisecond, TransactLatency: 10 * time.Millisecond}

// claimedRow is a row as the confirming GetItem reads it after a claim.
func claimedRow() map[string]types.AttributeValue {
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	n := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	return map[string]types.AttributeValue{
		"pk": s("bench#r07"), "sk": s(benchPool + "#user0000001"), "campaign": s(benchCampaign), "pool": s(benchPool),
		"user": s("user0000001"), "username": s("user0000001"), "updated_at": n(t0.UnixMilli()),
		"expires_at": n(t0.Add(ledger.DefaultRetention).Unix()), "holder": s(benchHolder),
		"lease_until": n(t0.Add(ledger.DefaultLease).UnixMilli()), "claimed_at": n(t0.UnixMilli()),
	}
}

// claimedRowJSON is claimedRow as DynamoDB's GetItem answers it.
func claimedRowJSON() string {
	return fmt.Sprintf(`{"Item":{"pk":{"S":"bench#r07"},"sk":{"S":"%[1]s#user0000001"},"campaign":{"S":"%[2]s"},"pool":{"S":"%[1]s"},`+
		`"user":{"S":"user0000001"},"username":{"S":"user0000001"},"updated_at":{"N":"%[3]d"},"expires_at":{"N":"%[4]d"},`+
		`"holder":{"S":"%[5]s"},"lease_until":{"N":"%[6]d"},"claimed_at":{"N":"%[3]d"}}}`,
		benchPool, benchCampaign, t0.UnixMilli(), t0.Add(ledger.DefaultRetention).Unix(), benchHolder, t0.Add(ledger.DefaultLease).UnixMilli())
}

// instantAPI is a fake DynamoDB that grants every claim and write at once.
func instantAPI(calls *atomic.Int64) *fakeAPI {
	row := claimedRow()
	return &fakeAPI{
		updateItem: func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error) {
			calls.Add(1)
			return &dynamodb.UpdateItemOutput{}, nil
		},
		getItem: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
			calls.Add(1)
			return &dynamodb.GetItemOutput{Item: row}, nil
		},
		transactWrite: func(*dynamodb.TransactWriteItemsInput) (*dynamodb.TransactWriteItemsOutput, error) {
			calls.Add(1)
			return &dynamodb.TransactWriteItemsOutput{}, nil
		},
	}
}

// memoryHTTP is an HTTP client that answers DynamoDB's calls from memory,
// as DynamoDB would for a claim granted and a write done, with the CRC32
// header the SDK checks.
type memoryHTTP struct {
	calls  atomic.Int64
	getRow []byte
}

func (m *memoryHTTP) Do(r *http.Request) (*http.Response, error) {
	m.calls.Add(1)
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	body := []byte("{}")
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetItem") {
		body = m.getRow
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Requestid", "memory")
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: h, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

// countingHTTP counts the calls of a real HTTP client.
type countingHTTP struct {
	calls atomic.Int64
	next  *http.Client
}

func (c *countingHTTP) Do(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	return c.next.Do(r)
}

// benchClient is an SDK client for endpoint through httpc, the SDK's
// retries off (a benchmark call that fails, fails).
func benchClient(endpoint string, httpc dynamodb.HTTPClient) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:       httpc,
		RetryMaxAttempts: 1,
	})
}

// forWorker is the ledger on api as the worker opens it, the pool folding
// case as new pools do.
func forWorker(b *testing.B, api ledger.API, table string) *ledger.ForWorker {
	b.Helper()
	l, err := ledger.New(api, ledger.Config{Table: table})
	if err != nil {
		b.Fatal(err)
	}
	return &ledger.ForWorker{Ledger: l, CaseSensitive: func(context.Context, string) (bool, error) { return false, nil }}
}

// ensured is forWorker on a table Ensure made.
func ensured(b *testing.B, api ledger.API, table string) *ledger.ForWorker {
	b.Helper()
	f := forWorker(b, api, table)
	if err := f.Ledger.Ensure(b.Context()); err != nil {
		b.Fatal(err)
	}
	return f
}

// userSeq numbers the benchmarks' users across runs, so a table that
// outlives one run (moto's) never sees a user twice.
var userSeq atomic.Int64

// users are n usernames never used before in this process.
func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%07d", userSeq.Add(1))
	}
	return out
}

// cpuNanos is this process's user + system time.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)
}

// step is what a benchmark does for one job's user.
type step func(ctx context.Context, f *ledger.ForWorker, u worker.LedgerUser) error

func claimStep(ctx context.Context, f *ledger.ForWorker, u worker.LedgerUser) error {
	c, err := f.Claim(ctx, u, benchHolder, "", t0)
	if err == nil && !c.Held {
		err = fmt.Errorf("claim of %s not held: %+v", u.Username, c)
	}
	return err
}

func recordStep(ctx context.Context, f *ledger.ForWorker, u worker.LedgerUser) error {
	return f.Record(ctx, u, string(ledger.StepReset), "", t0.Add(time.Second))
}

// jobStep is a job's ledger calls: the claim before the reset, the record
// after it.
func jobStep(ctx context.Context, f *ledger.ForWorker, u worker.LedgerUser) error {
	if err := claimStep(ctx, f, u); err != nil {
		return err
	}
	return recordStep(ctx, f, u)
}

// run times s over b.N new users and reports calls/op (calls counts the
// HTTP or API calls) and cpu-ns/op.
func run(b *testing.B, f *ledger.ForWorker, calls func() int64, s step) {
	b.Helper()
	names := users(b.N)
	ctx := b.Context()
	b.ReportAllocs()
	before, cpu := calls(), cpuNanos()
	b.ResetTimer()
	for i := range b.N {
		if err := s(ctx, f, worker.LedgerUser{Campaign: benchCampaign, Pool: benchPool, Username: names[i]}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNanos()-cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(calls()-before)/float64(b.N), "calls/op")
}

// BenchmarkLedgerJob is one job's ledger calls (claim, then the reset's
// record) at each level; see the comment at the top of the file.
func BenchmarkLedgerJob(b *testing.B) {
	b.Run("fake-api", func(b *testing.B) {
		var calls atomic.Int64
		run(b, forWorker(b, instantAPI(&calls), "bench"), calls.Load, jobStep)
	})
	b.Run("sdk-in-memory", func(b *testing.B) {
		m := &memoryHTTP{getRow: []byte(claimedRowJSON())}
		run(b, forWorker(b, benchClient("http://dynamodb.invalid", m), "bench"), m.calls.Load, jobStep)
	})
	for _, c := range []struct {
		name string
		cfg  dynamostub.Config
	}{{"http-standin", dynamostub.Config{}}, {"http-standin-5ms-10ms", benchLatency}} {
		b.Run(c.name, func(b *testing.B) {
			srv, err := dynamostub.Start(c.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			h := &countingHTTP{next: &http.Client{}}
			run(b, ensured(b, benchClient(srv.URL, h), "bench"), h.calls.Load, jobStep)
		})
	}
	b.Run("http-moto", func(b *testing.B) {
		for _, rows := range []int{0, 3000} {
			b.Run(fmt.Sprintf("table-%d-rows", rows), func(b *testing.B) {
				h := &countingHTTP{next: &http.Client{}}
				f := motoTable(b, h, rows)
				run(b, f, h.calls.Load, jobStep)
			})
		}
	})
}

// motoTables are the moto tables filled once per process, by size.
var motoTables = map[int]string{}

// motoTable is a ledger on a moto table holding at least rows rows of
// users already reset (filled once per process; a size of 0 is a new
// table each time).
func motoTable(b *testing.B, h *countingHTTP, rows int) *ledger.ForWorker {
	b.Helper()
	api := benchClient(mototest.Shared(b).URL, h)
	name, ok := motoTables[rows]
	if ok {
		return forWorker(b, api, name)
	}
	name = fmt.Sprintf("bench-%d-%d", rows, time.Now().UnixNano())
	f := ensured(b, api, name)
	for _, u := range users(rows) {
		// One UpdateItem each: filling through transactions would copy
		// the growing table for each of them.
		if err := f.Record(b.Context(), worker.LedgerUser{Campaign: benchCampaign, Pool: benchPool, Username: u},
			string(ledger.StepSignedOut), "", t0); err != nil {
			b.Fatal(err)
		}
	}
	if rows > 0 {
		motoTables[rows] = name
	}
	return f
}

// BenchmarkLedgerSteps is the claim and the record apart, without a
// network: what each costs in CPU and allocations.
func BenchmarkLedgerSteps(b *testing.B) {
	for _, s := range []struct {
		name string
		step step
	}{{"claim", claimStep}, {"record-reset", recordStep}} {
		b.Run(s.name+"/fake-api", func(b *testing.B) {
			var calls atomic.Int64
			run(b, forWorker(b, instantAPI(&calls), "bench"), calls.Load, s.step)
		})
		b.Run(s.name+"/sdk-in-memory", func(b *testing.B) {
			m := &memoryHTTP{getRow: []byte(claimedRowJSON())}
			run(b, forWorker(b, benchClient("http://dynamodb.invalid", m), "bench"), m.calls.Load, s.step)
		})
	}
}
