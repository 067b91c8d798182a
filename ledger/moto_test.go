package ledger_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/resetq/resetq/internal/moto"
	"github.com/resetq/resetq/internal/moto/mototest"
	"github.com/resetq/resetq/ledger"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if serial.srv != nil {
		serial.srv.Close()
	}
	if err := mototest.CloseShared(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

const region = "us-east-1"

// serial is the test binary's one-call-at-a-time proxy in front of moto.
// moto serves each request on its own thread without a lock: a
// conditional write is a check and then a write, and a transaction that
// fails restores a copy of the whole table taken when it began, undoing
// the writes other threads made meanwhile. DynamoDB serializes the writes
// of an item and isolates transactions; passing moto one call at a time
// gives the tests that, while the ledger's callers still race.
var serial struct {
	once sync.Once
	srv  *httptest.Server
	err  error
}

func endpoint(t *testing.T) string {
	t.Helper()
	target := mototest.Shared(t).URL
	serial.once.Do(func() {
		u, err := url.Parse(target)
		if err != nil {
			serial.err = err
			return
		}
		rp := httputil.NewSingleHostReverseProxy(u)
		var mu sync.Mutex
		serial.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			rp.ServeHTTP(w, r)
		}))
	})
	if serial.err != nil {
		t.Fatal(serial.err)
	}
	return serial.srv.URL
}

// client is a DynamoDB client for url (the serial proxy, or a fault proxy
// in front of it), with the SDK's retries off when retries is 1.
func client(t *testing.T, url string, retries int) *dynamodb.Client {
	t.Helper()
	cfg, err := moto.Config(t.Context(), url, region)
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if retries > 0 {
			o.RetryMaxAttempts = retries
		}
	})
}

// tableSeq numbers the tables of this process: with -count=N a test runs
// again on the same shared server and must not find its old table.
var tableSeq atomic.Int64

// tableName is a table of the test's own (moto copies a whole table for
// each transaction: small tables keep it fast).
func tableName(t *testing.T) string {
	name := regexp.MustCompile(`[^a-zA-Z0-9_.-]`).ReplaceAllString(t.Name(), "-")
	if len(name) > 200 {
		name = name[:200]
	}
	return name + "-" + strconv.FormatInt(tableSeq.Add(1), 10)
}

// bench is a test's ledger on its own table in moto, Ensure'd.
type bench struct {
	l   *ledger.Ledger
	api *dynamodb.Client
	cfg ledger.Config
}

func newBench(t *testing.T) *bench {
	t.Helper()
	api := client(t, endpoint(t), 0)
	cfg := ledger.Config{Table: tableName(t), Backoff: fastBackoff}
	l, err := ledger.New(api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &bench{l: l, api: api, cfg: cfg}
}

// t0 is the tests' start of time: every now is t0 plus something.
var t0 = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func str(s string) *string { return aws.String(s) }
