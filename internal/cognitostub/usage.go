package cognitostub

import (
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/resetq/resetq/internal/world"
)

// The usage metric the stand-in publishes, as Cognito does in CloudWatch:
// namespace AWS/Usage, statistic Sum, these dimensions.
const (
	usageNamespace = "AWS/Usage"
	usageCategory  = "UserAccountRecovery"
	// cloudWatchVersion is the Version of CloudWatch's Query protocol.
	cloudWatchVersion = "2010-08-01"
	cloudWatchXMLNS   = "http://monitoring.amazonaws.com/doc/2010-08-01/"
)

// usageDimensions is the one dimension set the stand-in publishes under;
// as in CloudWatch, a query names all of a metric's dimensions or none of
// its data.
var usageDimensions = map[string]string{
	"Service":  "Cognito User Pools",
	"Type":     "API",
	"Resource": usageCategory,
	"Class":    "None",
}

// minuteOf is the Unix minute t falls in.
func minuteOf(t time.Time) int64 { return t.Unix() / 60 }

// record counts one call of the category, throttled or not, in its minute.
func record(usage map[int64]*Counts, at time.Time, throttled bool) {
	m := minuteOf(at)
	c := usage[m]
	if c == nil {
		c = &Counts{}
		usage[m] = c
	}
	c.Calls++
	if throttled {
		c.Throttles++
	}
}

// SeedUsage replaces the usage record with a history: the calls of u
// before until, each admitted or throttled by q at its own time, as
// CloudWatch would hold them had the stand-in served them. A campaign on
// AWS starts into hours of real users' use; a benchmark cannot wait for
// it, so it simulates the minutes before a run with fresh q and u of the
// run's own model and pattern (neither is used afterwards). Calls served
// from then on are recorded on top; call it before they come.
func (s *Stub) SeedUsage(q world.Quota, u world.Users, until time.Time) {
	usage := map[int64]*Counts{}
	for t, ok := u.Peek(); ok && t.Before(until); t, ok = u.Peek() {
		u.Pop()
		record(usage, t, !q.Admit(t))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usage = usage
}

// metricQuery is one of GetMetricData's MetricDataQueries, as far as the
// stand-in reads it.
type metricQuery struct {
	id, label, namespace, metric, stat string
	dims                               map[string]string
	period                             int64 // seconds
	returnData                         bool
}

// queryError is an AWS Query protocol error: its code and message.
type queryError struct{ code, msg string }

func (e *queryError) Error() string { return e.code + ": " + e.msg }

func invalid(format string, args ...any) error {
	return &queryError{"InvalidParameterValue", fmt.Sprintf(format, args...)}
}

// parseQueries reads MetricDataQueries.member.N.* from form.
func parseQueries(form url.Values) ([]metricQuery, error) {
	var out []metricQuery
	for n := 1; ; n++ {
		p := "MetricDataQueries.member." + strconv.Itoa(n) + "."
		id := form.Get(p + "Id")
		if id == "" {
			if len(out) == 0 {
				return nil, &queryError{"MissingParameter", "MetricDataQueries is required"}
			}
			return out, nil
		}
		if form.Get(p+"Expression") != "" {
			return nil, invalid("query %s: the stand-in evaluates no metric math Expression", id)
		}
		q := metricQuery{id: id, label: form.Get(p + "Label"), returnData: form.Get(p+"ReturnData") != "false",
			dims: map[string]string{}}
		ms := p + "MetricStat."
		q.namespace, q.metric, q.stat = form.Get(ms+"Metric.Namespace"), form.Get(ms+"Metric.MetricName"), form.Get(ms+"Stat")
		for k := 1; ; k++ {
			d := ms + "Metric.Dimensions.member." + strconv.Itoa(k) + "."
			name := form.Get(d + "Name")
			if name == "" {
				break
			}
			q.dims[name] = form.Get(d + "Value")
		}
		period, err := strconv.ParseInt(form.Get(ms+"Period"), 10, 64)
		if err != nil || period < 60 || period%60 != 0 {
			return nil, invalid("query %s: Period %q: the stand-in serves one-minute metrics, want a multiple of 60", id, form.Get(ms+"Period"))
		}
		q.period = period
		if q.stat != "Sum" {
			return nil, invalid("query %s: Stat %q: the stand-in serves Sum only", id, q.stat)
		}
		out = append(out, q)
	}
}

// parseTime reads an ISO 8601 timestamp parameter.
func parseTime(form url.Values, name string) (time.Time, error) {
	v := form.Get(name)
	if v == "" {
		return time.Time{}, &queryError{"MissingParameter", name + " is required"}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, invalid("%s %q: %v", name, v, err)
	}
	return t, nil
}

type metricDataResult struct {
	ID         string   `xml:"Id"`
	Label      string   `xml:"Label"`
	StatusCode string   `xml:"StatusCode"`
	Timestamps []string `xml:"Timestamps>member"`
	Values     []string `xml:"Values>member"`
}

type getMetricDataResponse struct {
	XMLName   xml.Name           `xml:"GetMetricDataResponse"`
	XMLNS     string             `xml:"xmlns,attr"`
	Results   []metricDataResult `xml:"GetMetricDataResult>MetricDataResults>member"`
	RequestID string             `xml:"ResponseMetadata>RequestId"`
}

type queryErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	XMLNS     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// serveQuery answers one call of the AWS Query protocol: CloudWatch's
// GetMetricData, or STS's AssumeRole and GetCallerIdentity.
func (s *Stub) serveQuery(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		s.answerQuery(w, http.StatusBadRequest, queryErrorResponse{Code: "MalformedQueryString", Message: err.Error()})
		return
	}
	form := r.PostForm
	action, version := form.Get("Action"), form.Get("Version")
	if version == stsVersion {
		s.serveSTS(w, r, form)
		return
	}
	if action != "GetMetricData" || version != cloudWatchVersion {
		s.answerQuery(w, http.StatusBadRequest, queryErrorResponse{Code: "InvalidAction",
			Message: fmt.Sprintf("the stand-in serves CloudWatch's GetMetricData (Version %s) only, not %q version %q", cloudWatchVersion, action, version)})
		return
	}
	out, err := s.getMetricData(form)
	if err != nil {
		qe, ok := err.(*queryError)
		if !ok {
			qe = &queryError{"InternalFailure", err.Error()}
		}
		s.answerQuery(w, http.StatusBadRequest, queryErrorResponse{Code: qe.code, Message: qe.msg})
		return
	}
	s.answerQuery(w, http.StatusOK, out)
}

// getMetricData answers GetMetricData from the usage record: for each
// query of the stand-in's metric, the Sum per Period of the minutes from
// StartTime (rounded down to the minute) to before EndTime that have ended
// UsageDelay ago and that had a call (a throttle, for ThrottleCount);
// any other metric has no data.
func (s *Stub) getMetricData(form url.Values) (getMetricDataResponse, error) {
	out := getMetricDataResponse{XMLNS: cloudWatchXMLNS, RequestID: "cognitostub"}
	start, err := parseTime(form, "StartTime")
	if err != nil {
		return out, err
	}
	end, err := parseTime(form, "EndTime")
	if err != nil {
		return out, err
	}
	if !start.Before(end) {
		return out, invalid("StartTime %v is not before EndTime %v", start, end)
	}
	queries, err := parseQueries(form)
	if err != nil {
		return out, err
	}
	descending := form.Get("ScanBy") != "TimestampAscending" // CloudWatch's default is descending
	first := start.Truncate(time.Minute)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.usageReads++
	// The last minute published: every minute that ended UsageDelay ago.
	published := minuteOf(s.now().Add(-s.usageDelay)) - 1
	for _, q := range queries {
		if !q.returnData {
			continue
		}
		res := metricDataResult{ID: q.id, Label: q.label, StatusCode: "Complete"}
		if res.Label == "" {
			res.Label = q.metric
		}
		if ours := q.namespace == usageNamespace && (q.metric == "CallCount" || q.metric == "ThrottleCount") &&
			maps.Equal(q.dims, usageDimensions); ours {
			sums := map[int64]int{} // period start (Unix s) -> sum
			for m, c := range s.usage {
				at := time.Unix(m*60, 0)
				if m > published || at.Before(first) || !at.Before(end) {
					continue
				}
				v := c.Calls
				if q.metric == "ThrottleCount" {
					v = c.Throttles
				}
				if v == 0 {
					continue // CloudWatch has no point for a minute without any
				}
				p := first.Unix() + (at.Unix()-first.Unix())/q.period*q.period
				sums[p] += v
			}
			keys := make([]int64, 0, len(sums))
			for p := range sums {
				keys = append(keys, p)
			}
			slices.Sort(keys)
			if descending {
				slices.Reverse(keys)
			}
			for _, p := range keys {
				res.Timestamps = append(res.Timestamps, time.Unix(p, 0).UTC().Format(time.RFC3339))
				res.Values = append(res.Values, strconv.Itoa(sums[p]))
			}
			s.usagePoints += len(keys)
		}
		out.Results = append(out.Results, res)
	}
	return out, nil
}

func (s *Stub) answerQuery(w http.ResponseWriter, status int, v any) {
	if e, ok := v.(queryErrorResponse); ok {
		if e.XMLNS == "" {
			e.XMLNS = cloudWatchXMLNS
		}
		e.Type, e.RequestID = "Sender", "cognitostub"
		v = e
	}
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	body = append([]byte(xml.Header), body...)
	h := w.Header()
	h.Set("Content-Type", "text/xml")
	h.Set("X-Amzn-Requestid", "cognitostub")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
