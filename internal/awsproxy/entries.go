package awsproxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// failEntries carries out a FailEntries fault: the chosen entries of a
// batch call fail, the others are forwarded, and the two answers merged.
func (p *Proxy) failEntries(w http.ResponseWriter, r *http.Request, op string, body []byte, f Fault) {
	var req map[string]json.RawMessage
	var entries []json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil || json.Unmarshal(req["Entries"], &entries) != nil || len(entries) == 0 {
		// Not a batch call: forward it untouched.
		p.forward(w, r, op, body)
		return
	}
	type failed struct {
		ID          string `json:"Id"`
		Code        string `json:"Code"`
		Message     string `json:"Message"`
		SenderFault bool   `json:"SenderFault"`
	}
	var fails []failed
	var keep []json.RawMessage
	for _, e := range entries {
		if len(fails) < f.FailEntries && (f.EntryContains == "" || bytes.Contains(e, []byte(f.EntryContains))) {
			var id struct {
				ID string `json:"Id"`
			}
			_ = json.Unmarshal(e, &id)
			fails = append(fails, failed{ID: id.ID, Code: "InternalError", Message: "injected by awsproxy"})
			continue
		}
		keep = append(keep, e)
	}
	if len(fails) == 0 {
		p.forward(w, r, op, body)
		return
	}
	resp := map[string]json.RawMessage{"Successful": json.RawMessage("[]")}
	status := http.StatusOK
	header := http.Header{}
	if len(keep) > 0 {
		if !p.admit(region(r), op) {
			writeError(w, r, http.StatusBadRequest, "TooManyRequestsException", "Rate exceeded", p.nextRequestID())
			return
		}
		p.count(p.stats.Forwarded, op)
		req["Entries"], _ = json.Marshal(keep)
		newBody, _ := json.Marshal(req)
		out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target.JoinPath(r.URL.Path).String(), bytes.NewReader(newBody))
		if err != nil {
			p.forwardError(w, r, err)
			return
		}
		out.Header = r.Header.Clone()
		out.Host = r.Host
		out.ContentLength = int64(len(newBody))
		r = p.track(r, op, newBody)
		res, err := p.transport.RoundTrip(out)
		if err != nil {
			p.forwardError(w, r, err)
			return
		}
		p.observed(r.Context(), res.StatusCode)
		defer res.Body.Close()
		resBody, err := io.ReadAll(res.Body)
		if err != nil {
			p.forwardError(w, r, err)
			return
		}
		if res.StatusCode != http.StatusOK || json.Unmarshal(resBody, &resp) != nil {
			// The whole call failed: pass its answer on.
			copyHeader(w.Header(), res.Header)
			w.WriteHeader(res.StatusCode)
			w.Write(resBody)
			return
		}
		header = res.Header
	}
	var prior []failed
	if raw, ok := resp["Failed"]; ok {
		_ = json.Unmarshal(raw, &prior)
	}
	resp["Failed"], _ = json.Marshal(append(prior, fails...))
	if _, ok := resp["Successful"]; !ok {
		resp["Successful"] = json.RawMessage("[]")
	}
	merged, _ := json.Marshal(resp)
	copyHeader(w.Header(), header)
	w.Header().Set("Content-Length", strconv.Itoa(len(merged)))
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	}
	if w.Header().Get("X-Amzn-RequestId") == "" {
		w.Header().Set("X-Amzn-RequestId", p.nextRequestID())
	}
	w.WriteHeader(status)
	w.Write(merged)
}

// forward admits a call under its quota and forwards it unchanged.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, op string, body []byte) {
	if !p.admit(region(r), op) {
		writeError(w, r, http.StatusBadRequest, "TooManyRequestsException", "Rate exceeded", p.nextRequestID())
		return
	}
	p.count(p.stats.Forwarded, op)
	p.rp.ServeHTTP(w, p.track(r, op, body))
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		dst[k] = append([]string(nil), vs...)
	}
}
