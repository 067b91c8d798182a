// Package dynamostub is a small in-memory stand-in for Amazon DynamoDB,
// for benchmarks: it speaks the AWS JSON 1.0 protocol the SDK uses, so a
// real SDK client (or the resetq binary, with AWS_ENDPOINT_URL_DYNAMODB)
// calls it over HTTP, and it answers after a latency of its own, like
// DynamoDB's few milliseconds.
//
// It serves what the campaign ledger calls: CreateTable, DescribeTable,
// UpdateTimeToLive, GetItem, UpdateItem (SET with if_not_exists, + and -,
// ADD of numbers, REMOVE; conditions with comparisons, attribute_exists,
// attribute_not_exists, begins_with, AND, OR, NOT;
// ReturnValuesOnConditionCheckFailure), TransactWriteItems of Update and
// ConditionCheck items (all or nothing, with cancellation reasons per
// item), BatchGetItem and Query on the partition key. Values are S, N,
// BOOL and NULL; anything else is a ValidationException, as are the
// mistakes DynamoDB refuses (an unused placeholder, two actions on one
// attribute, a key attribute updated, two items of a transaction on one
// item), so a request that passes here is one DynamoDB would take.
//
// Unlike moto, every call runs under one lock: conditional writes are
// atomic and transactions isolated, and a call costs the same whatever
// the table holds. There is no throttling, no capacity, no TTL expiry,
// no size limit and no paging but Query's Limit.
package dynamostub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// targetPrefix starts the X-Amz-Target of every DynamoDB call.
const targetPrefix = "DynamoDB_20120810."

// errPrefix starts the __type of every error DynamoDB answers.
const errPrefix = "com.amazonaws.dynamodb.v20120810#"

// Config configures a Stub. The zero value answers at once.
type Config struct {
	// Latency delays the answer to every call but TransactWriteItems,
	// after the call took effect.
	Latency time.Duration
	// TransactLatency delays TransactWriteItems's answers (0: Latency).
	TransactLatency time.Duration
}

// Stats is a snapshot of a Stub's counters.
type Stats struct {
	// Calls counts the calls by operation, refused ones included.
	Calls map[string]int `json:"calls"`
	// ConditionFailed counts the UpdateItem calls and transactions a
	// condition refused.
	ConditionFailed int `json:"condition_failed"`
	// PeakInFlight is the most calls the stand-in held at once (latency
	// included): how many of the caller's calls overlapped.
	PeakInFlight int `json:"peak_in_flight"`
}

// Total is the calls of every operation.
func (s Stats) Total() int {
	n := 0
	for _, c := range s.Calls {
		n += c
	}
	return n
}

// Stub is the stand-in. It is safe for concurrent use.
type Stub struct {
	mu       sync.Mutex
	cfg      Config
	tables   map[string]*table
	stats    Stats
	inFlight int
}

// New returns a Stub with no tables.
func New(cfg Config) *Stub {
	return &Stub{cfg: cfg, tables: map[string]*table{}, stats: Stats{Calls: map[string]int{}}}
}

// SetLatency changes the latencies of the calls to come.
func (s *Stub) SetLatency(cfg Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg
}

// Stats returns the counters since the start or the last ResetStats.
func (s *Stub) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Calls = make(map[string]int, len(s.stats.Calls))
	for k, v := range s.stats.Calls {
		st.Calls[k] = v
	}
	return st
}

// ResetStats sets the counters to zero; the tables stay.
func (s *Stub) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{Calls: map[string]int{}}
}

// Items is how many items table holds (0 for no such table).
func (s *Stub) Items(table string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tables[table]; t != nil {
		return len(t.items)
	}
	return 0
}

// apiError is an answer with DynamoDB's error code (the part of __type
// after '#') and, for some codes, members of its own.
type apiError struct {
	status  int
	code    string
	message string
	extra   map[string]any
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func validation(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "ValidationException", message: fmt.Sprintf(format, args...)}
}

func notFound() *apiError {
	return &apiError{status: http.StatusBadRequest, code: "ResourceNotFoundException", message: "Requested resource not found"}
}

// ServeHTTP answers one DynamoDB call.
func (s *Stub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if r.Method != http.MethodPost || !ok {
		s.answer(w, nil, &apiError{status: http.StatusBadRequest, code: "UnknownOperationException",
			message: "unknown operation " + strconv.Quote(r.Header.Get("X-Amz-Target"))})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		s.answer(w, nil, &apiError{status: http.StatusBadRequest, code: "SerializationException", message: err.Error()})
		return
	}
	s.mu.Lock()
	s.stats.Calls[op]++
	s.inFlight++
	s.stats.PeakInFlight = max(s.stats.PeakInFlight, s.inFlight)
	delay := s.cfg.Latency
	if op == "TransactWriteItems" && s.cfg.TransactLatency > 0 {
		delay = s.cfg.TransactLatency
	}
	out, aerr := s.call(op, body)
	if aerr != nil && (aerr.code == "ConditionalCheckFailedException" || aerr.code == "TransactionCanceledException") {
		s.stats.ConditionFailed++
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	s.answer(w, out, aerr)
}

// call carries out op on the request body, under s.mu.
func (s *Stub) call(op string, body []byte) (any, *apiError) {
	handlers := map[string]func([]byte) (any, *apiError){
		"CreateTable":        s.createTable,
		"DescribeTable":      s.describeTable,
		"UpdateTimeToLive":   s.updateTimeToLive,
		"GetItem":            s.getItem,
		"UpdateItem":         s.updateItem,
		"TransactWriteItems": s.transactWriteItems,
		"BatchGetItem":       s.batchGetItem,
		"Query":              s.query,
	}
	h, ok := handlers[op]
	if !ok {
		return nil, &apiError{status: http.StatusBadRequest, code: "UnknownOperationException", message: "the stand-in does not serve " + op}
	}
	return h(body)
}

func (s *Stub) answer(w http.ResponseWriter, out any, aerr *apiError) {
	status := http.StatusOK
	var body []byte
	if aerr != nil {
		m := map[string]any{"__type": errPrefix + aerr.code, "message": aerr.message}
		for k, v := range aerr.extra {
			m[k] = v
		}
		body, _ = json.Marshal(m)
		status = aerr.status
		w.Header().Set("X-Amzn-Errortype", aerr.code)
	} else {
		var err error
		if body, err = json.Marshal(out); err != nil {
			s.answer(w, nil, &apiError{status: http.StatusInternalServerError, code: "InternalServerError", message: err.Error()})
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Requestid", "dynamostub")
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// decode reads a request body strictly: a member the stand-in does not
// know is refused rather than ignored.
func decode(body []byte, v any) *apiError {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &apiError{status: http.StatusBadRequest, code: "SerializationException", message: "the stand-in cannot read the request: " + err.Error()}
	}
	return nil
}

// table is one table: its key schema and its items by key.
type table struct {
	name      string
	keySchema []keyElement
	attrDefs  []attrDefinition
	billing   string
	created   time.Time
	items     map[string]item
}

type keyElement struct {
	AttributeName string
	KeyType       string
}

type attrDefinition struct {
	AttributeName string
	AttributeType string
}

// keyNames are the table's key attributes, the hash key first.
func (t *table) keyNames() []string {
	out := make([]string, len(t.keySchema))
	for i, k := range t.keySchema {
		out[i] = k.AttributeName
	}
	return out
}

// id is the item key's identity in t.items, after checking that key holds
// exactly the table's key attributes.
func (t *table) id(key item) (string, *apiError) {
	if len(key) != len(t.keySchema) {
		return "", validation("The provided key element does not match the schema")
	}
	var b strings.Builder
	for _, k := range t.keySchema {
		v, ok := key[k.AttributeName]
		switch {
		case !ok:
			return "", validation("The provided key element does not match the schema")
		case v.S != nil:
			b.WriteString("S" + strconv.Itoa(len(*v.S)) + ":" + *v.S)
		case v.N != nil:
			b.WriteString("N" + strconv.Itoa(len(*v.N)) + ":" + *v.N)
		default:
			return "", validation("key attribute %s must be S or N", k.AttributeName)
		}
	}
	return b.String(), nil
}

func (t *table) description() map[string]any {
	return map[string]any{
		"TableName":            t.name,
		"TableStatus":          "ACTIVE",
		"KeySchema":            t.keySchema,
		"AttributeDefinitions": t.attrDefs,
		"CreationDateTime":     float64(t.created.UnixMilli()) / 1000,
		"ItemCount":            len(t.items),
		"BillingModeSummary":   map[string]any{"BillingMode": t.billing},
		"TableArn":             "arn:aws:dynamodb:us-east-1:000000000000:table/" + t.name,
	}
}

func (s *Stub) table(name string) (*table, *apiError) {
	t := s.tables[name]
	if t == nil {
		return nil, notFound()
	}
	return t, nil
}

func (s *Stub) createTable(body []byte) (any, *apiError) {
	var in struct {
		TableName                 string
		KeySchema                 []keyElement
		AttributeDefinitions      []attrDefinition
		BillingMode               string
		DeletionProtectionEnabled bool
		Tags                      json.RawMessage
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	switch {
	case in.TableName == "":
		return nil, validation("TableName is required")
	case len(in.KeySchema) == 0 || len(in.KeySchema) > 2 || in.KeySchema[0].KeyType != "HASH":
		return nil, validation("KeySchema: a HASH key, and optionally a RANGE key")
	case s.tables[in.TableName] != nil:
		return nil, &apiError{status: http.StatusBadRequest, code: "ResourceInUseException", message: "Table already exists: " + in.TableName}
	}
	t := &table{name: in.TableName, keySchema: in.KeySchema, attrDefs: in.AttributeDefinitions,
		billing: cmpOr(in.BillingMode, "PROVISIONED"), created: time.Now(), items: map[string]item{}}
	s.tables[in.TableName] = t
	return map[string]any{"TableDescription": t.description()}, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *Stub) describeTable(body []byte) (any, *apiError) {
	var in struct{ TableName string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	t, err := s.table(in.TableName)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Table": t.description()}, nil
}

func (s *Stub) updateTimeToLive(body []byte) (any, *apiError) {
	var in struct {
		TableName               string
		TimeToLiveSpecification json.RawMessage
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if _, err := s.table(in.TableName); err != nil {
		return nil, err
	}
	return map[string]any{"TimeToLiveSpecification": in.TimeToLiveSpecification}, nil
}

func (s *Stub) getItem(body []byte) (any, *apiError) {
	var in struct {
		TableName      string
		Key            item
		ConsistentRead bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	t, err := s.table(in.TableName)
	if err != nil {
		return nil, err
	}
	id, err := t.id(in.Key)
	if err != nil {
		return nil, err
	}
	if it, ok := t.items[id]; ok {
		return map[string]any{"Item": it}, nil
	}
	return struct{}{}, nil
}

// write is one conditional update: UpdateItem's, or an item of a
// transaction's (ConditionCheck: no update).
type write struct {
	TableName                           string
	Key                                 item
	UpdateExpression                    string
	ConditionExpression                 string
	ExpressionAttributeNames            map[string]string
	ExpressionAttributeValues           map[string]value
	ReturnValuesOnConditionCheckFailure string
}

// planned is a write checked and ready: the item after it, where it goes,
// and whether its condition held.
type planned struct {
	t      *table
	id     string
	old    item // nil: no such item
	next   item // nil: a condition check, nothing written
	passed bool
}

// plan evaluates w against the table as it is, writing nothing.
func (s *Stub) plan(w write, check bool) (planned, *apiError) {
	t, err := s.table(w.TableName)
	if err != nil {
		return planned{}, err
	}
	id, err := t.id(w.Key)
	if err != nil {
		return planned{}, err
	}
	for name, v := range w.ExpressionAttributeValues {
		if !v.valid() {
			return planned{}, validation("ExpressionAttributeValues %s: the stand-in serves S, N, BOOL and NULL only", name)
		}
	}
	sc := newScope(w.ExpressionAttributeNames, w.ExpressionAttributeValues)
	p := planned{t: t, id: id, old: t.items[id], passed: true}
	var acts []action
	switch {
	case check && w.UpdateExpression != "":
		return planned{}, validation("a ConditionCheck has no UpdateExpression")
	case check && w.ConditionExpression == "":
		return planned{}, validation("a ConditionCheck needs a ConditionExpression")
	case !check:
		var perr error
		if acts, perr = parseUpdate(w.UpdateExpression, sc, t.keyNames()); perr != nil {
			return planned{}, validation("Invalid UpdateExpression: %v", perr)
		}
	}
	var cond condition
	if w.ConditionExpression != "" {
		var perr error
		if cond, perr = parseCondition(w.ConditionExpression, sc); perr != nil {
			return planned{}, validation("Invalid ConditionExpression: %v", perr)
		}
	}
	if u := sc.unused(); u != "" {
		return planned{}, validation("Value provided in ExpressionAttributeNames or ExpressionAttributeValues unused in expressions: %s", u)
	}
	old := p.old
	if old == nil {
		old = item{}
	}
	if cond != nil {
		ok, cerr := cond(old)
		if cerr != nil {
			return planned{}, validation("Invalid ConditionExpression: %v", cerr)
		}
		if !ok {
			p.passed = false
			return p, nil
		}
	}
	if check {
		return p, nil
	}
	next := old.clone()
	for k, v := range w.Key {
		next[k] = v
	}
	for _, a := range acts {
		if aerr := a(old, next); aerr != nil {
			return planned{}, validation("Invalid UpdateExpression: %v", aerr)
		}
	}
	p.next = next
	return p, nil
}

func (p planned) apply() {
	if p.next != nil {
		p.t.items[p.id] = p.next
	}
}

func (s *Stub) updateItem(body []byte) (any, *apiError) {
	var in struct {
		write
		ReturnValues string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ReturnValues != "" && in.ReturnValues != "NONE" {
		return nil, validation("ReturnValues %s is not served by the stand-in", in.ReturnValues)
	}
	p, err := s.plan(in.write, false)
	if err != nil {
		return nil, err
	}
	if !p.passed {
		e := &apiError{status: http.StatusBadRequest, code: "ConditionalCheckFailedException", message: "The conditional request failed"}
		if in.ReturnValuesOnConditionCheckFailure == "ALL_OLD" && p.old != nil {
			e.extra = map[string]any{"Item": p.old}
		}
		return nil, e
	}
	p.apply()
	return struct{}{}, nil
}

func (s *Stub) transactWriteItems(body []byte) (any, *apiError) {
	var in struct {
		TransactItems []struct {
			Update         *write
			ConditionCheck *write
		}
		ClientRequestToken string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if n := len(in.TransactItems); n == 0 || n > 100 {
		return nil, validation("a transaction holds 1 to 100 items, not %d", n)
	}
	plans := make([]planned, len(in.TransactItems))
	seen := map[string]bool{}
	failed := false
	for i, ti := range in.TransactItems {
		w, check := ti.Update, false
		if w == nil {
			w, check = ti.ConditionCheck, true
		}
		if w == nil || ti.Update != nil && ti.ConditionCheck != nil {
			return nil, validation("TransactItems[%d]: one Update or ConditionCheck (the stand-in serves no Put or Delete)", i)
		}
		p, err := s.plan(*w, check)
		if err != nil {
			return nil, err
		}
		key := w.TableName + "\x00" + p.id
		if seen[key] {
			return nil, validation("Transaction request cannot include multiple operations on one item")
		}
		seen[key] = true
		plans[i] = p
		failed = failed || !p.passed
	}
	if failed {
		reasons := make([]map[string]any, len(plans))
		codes := make([]string, len(plans))
		for i, p := range plans {
			reasons[i], codes[i] = map[string]any{"Code": "None"}, "None"
			if !p.passed {
				reasons[i] = map[string]any{"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
				codes[i] = "ConditionalCheckFailed"
				w := in.TransactItems[i].Update
				if w == nil {
					w = in.TransactItems[i].ConditionCheck
				}
				if w.ReturnValuesOnConditionCheckFailure == "ALL_OLD" && p.old != nil {
					reasons[i]["Item"] = p.old
				}
			}
		}
		return nil, &apiError{status: http.StatusBadRequest, code: "TransactionCanceledException",
			message: "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]",
			extra:   map[string]any{"CancellationReasons": reasons}}
	}
	for _, p := range plans {
		p.apply()
	}
	return struct{}{}, nil
}

func (s *Stub) batchGetItem(body []byte) (any, *apiError) {
	var in struct {
		RequestItems map[string]struct {
			Keys           []item
			ConsistentRead bool
		}
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	total := 0
	responses := map[string][]item{}
	for name, req := range in.RequestItems {
		t, err := s.table(name)
		if err != nil {
			return nil, err
		}
		total += len(req.Keys)
		got := []item{}
		for _, k := range req.Keys {
			id, err := t.id(k)
			if err != nil {
				return nil, err
			}
			if it, ok := t.items[id]; ok {
				got = append(got, it)
			}
		}
		responses[name] = got
	}
	if total == 0 || total > 100 {
		return nil, validation("BatchGetItem reads 1 to 100 keys, not %d", total)
	}
	return map[string]any{"Responses": responses, "UnprocessedKeys": map[string]any{}}, nil
}

func (s *Stub) query(body []byte) (any, *apiError) {
	var in struct {
		TableName                 string
		KeyConditionExpression    string
		ExpressionAttributeNames  map[string]string
		ExpressionAttributeValues map[string]value
		ConsistentRead            bool
		Limit                     int
		ExclusiveStartKey         item
		ScanIndexForward          *bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	t, err := s.table(in.TableName)
	if err != nil {
		return nil, err
	}
	sc := newScope(in.ExpressionAttributeNames, in.ExpressionAttributeValues)
	cond, perr := parseCondition(in.KeyConditionExpression, sc)
	if perr != nil {
		return nil, validation("Invalid KeyConditionExpression: %v", perr)
	}
	if u := sc.unused(); u != "" {
		return nil, validation("Value provided in ExpressionAttributeNames or ExpressionAttributeValues unused in expressions: %s", u)
	}
	type hit struct {
		id string
		it item
	}
	var hits []hit
	for id, it := range t.items {
		ok, cerr := cond(it)
		if cerr != nil {
			return nil, validation("Invalid KeyConditionExpression: %v", cerr)
		}
		if ok {
			hits = append(hits, hit{id, it})
		}
	}
	if names := t.keyNames(); len(names) == 2 {
		rk := names[1]
		slices.SortFunc(hits, func(a, b hit) int { return compareKeys(a.it[rk], b.it[rk]) })
	}
	if in.ScanIndexForward != nil && !*in.ScanIndexForward {
		slices.Reverse(hits)
	}
	if in.ExclusiveStartKey != nil {
		start, err := t.id(in.ExclusiveStartKey)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(hits, func(h hit) bool { return h.id == start })
		hits = hits[i+1:]
	}
	out := map[string]any{}
	if in.Limit > 0 && len(hits) > in.Limit {
		hits = hits[:in.Limit]
		last := item{}
		for _, k := range t.keyNames() {
			last[k] = hits[len(hits)-1].it[k]
		}
		out["LastEvaluatedKey"] = last
	}
	items := make([]item, len(hits))
	for i, h := range hits {
		items[i] = h.it
	}
	out["Items"], out["Count"], out["ScannedCount"] = items, len(items), len(items)
	return out, nil
}

// compareKeys orders two range key values: strings by their bytes, numbers
// by their value.
func compareKeys(a, b value) int {
	if a.N != nil && b.N != nil {
		x, errX := number(*a.N)
		y, errY := number(*b.N)
		if errX == nil && errY == nil {
			return x.Cmp(y)
		}
	}
	if a.S != nil && b.S != nil {
		return strings.Compare(*a.S, *b.S)
	}
	return 0
}
