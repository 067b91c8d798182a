// Package usagemetricstest has a usagemetrics.Reader for tests.
package usagemetricstest

import (
	"context"
	"sync"

	"github.com/resetq/resetq/usagemetrics"
)

// Reader answers each query from its series of "region/metric" (e.g.
// "us-east-1/CallCount") for the recovery category, "region/category/metric"
// for any category, or with its error for the Region, and records the
// queries. It is safe for concurrent use.
type Reader struct {
	mu      sync.Mutex
	series  map[string][]usagemetrics.Point
	errs    map[string]error
	queries []usagemetrics.Query
}

var _ usagemetrics.Reader = (*Reader)(nil)

// New returns a Reader with series per "region/metric" and errs per
// Region; either may be nil.
func New(series map[string][]usagemetrics.Point, errs map[string]error) *Reader {
	if series == nil {
		series = map[string][]usagemetrics.Point{}
	}
	return &Reader{series: series, errs: errs}
}

// Usage answers q in region.
func (r *Reader) Usage(_ context.Context, region string, q usagemetrics.Query) ([]usagemetrics.Point, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, q)
	if err := r.errs[region]; err != nil {
		return nil, err
	}
	if pts, ok := r.series[region+"/"+q.Category+"/"+q.Metric]; ok || q.Category != usagemetrics.RecoveryCategory {
		return pts, nil
	}
	return r.series[region+"/"+q.Metric], nil
}

// Set replaces the series of key ("region/metric").
func (r *Reader) Set(key string, points []usagemetrics.Point) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.series[key] = points
}

// Queries is every query answered so far, oldest first.
func (r *Reader) Queries() []usagemetrics.Query {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]usagemetrics.Query(nil), r.queries...)
}
