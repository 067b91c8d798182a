package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeSQS answers GetQueueAttributes for a queue of 3 visible jobs, and
// fails with a 500 the requests fail says (numbered from 1).
func fakeSQS(t *testing.T, fail func(n int) bool) (url string, requests *atomic.Int32) {
	requests = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonSQS.GetQueueAttributes" {
			http.Error(w, "unexpected "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if fail(int(requests.Add(1))) {
			w.Header().Set("X-Amzn-ErrorType", "InternalFailure")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"__type":"InternalFailure","message":"injected"}`)
			return
		}
		fmt.Fprint(w, `{"Attributes":{"VisibilityTimeout":"60","ApproximateNumberOfMessages":"3",`+
			`"ApproximateNumberOfMessagesNotVisible":"0","ApproximateNumberOfMessagesDelayed":"0"}}`)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return srv.URL + "/123456789012/jobs", requests
}

// TestStatusWaitsOutFaults: status's samples wait out SQS faults, the
// first as the start-up reads do, a later one with --watch skipped with a
// warning; a watch whose samples keep failing ends with exit 1 after
// startupTries of them in a row instead of going on for ever. Request 1
// reads the queue's settings; each sample is one read of the SDK's 3
// attempts.
func TestStatusWaitsOutFaults(t *testing.T) {
	tests := []struct {
		name    string
		fail    func(n int) bool
		code    int
		samples int    // lines printed
		warns   string // in stderr
	}{
		{"the first sample's read fails once", func(n int) bool { return n >= 2 && n <= 4 }, exitOK, 3, "start-up read failed; retrying"},
		{"a later sample fails", func(n int) bool { return n >= 4 && n <= 6 }, exitOK, 3, "a sample failed"},
		{"every later sample fails", func(n int) bool { return n >= 3 }, exitFailure, 1, "a sample failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, requests := fakeSQS(t, tt.fail)
			args := []string{"status", "--queue-url", url, "--usage-region", "none", "--output", "json",
				"--watch", "--count", "3", "--interval", "10ms"}
			var out, errOut bytes.Buffer
			code := Run(context.Background(), args, &out, &errOut)
			lines := strings.Count(strings.TrimSpace(out.String()), "\n") + 1
			if out.Len() == 0 {
				lines = 0
			}
			if code != tt.code || lines != tt.samples || !strings.Contains(errOut.String(), tt.warns) {
				t.Fatalf("exit %d with %d samples after %d requests, want exit %d with %d and %q in stderr:\n%s\n%s",
					code, lines, requests.Load(), tt.code, tt.samples, tt.warns, out.String(), errOut.String())
			}
		})
	}
}
