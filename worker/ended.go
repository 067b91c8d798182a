package worker

import (
	"sync"
	"time"
)

// endedRetention is how long the ID of a job whose delete failed is
// remembered. The message comes back once its visibility timeout ends
// (minutes at most); an hour is ample and keeps the set small.
const endedRetention = time.Hour

// endedSet remembers the jobs that ended in this process (reset, sent back
// or dead-lettered) but whose message could not be deleted, by message ID,
// which SQS keeps across deliveries. When such a message is delivered
// again, the worker deletes it instead of running the job a second time:
// a sent-back job would otherwise exist twice, and a dead-lettered one
// reach the DLQ twice. It only knows this process's jobs: after a crash,
// the redelivery check (AdminGetUser) is what keeps a user from a second
// code.
type endedSet struct {
	mu      sync.Mutex
	deletes map[string]string    // receipt handle -> message ID, while its delete is under way
	failed  map[string]time.Time // message ID -> when its delete failed
}

// deleting records that receipt, of message id, is being deleted.
func (s *endedSet) deleting(receipt, id string) {
	s.mu.Lock()
	s.deletes[receipt] = id
	s.mu.Unlock()
}

// deleted settles a delete batch: the receipts in failed were not deleted.
func (s *endedSet) deleted(receipts, failed []string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range failed {
		if id, ok := s.deletes[r]; ok {
			s.failed[id] = now
		}
	}
	for _, r := range receipts {
		delete(s.deletes, r)
	}
	if len(failed) > 0 {
		for id, at := range s.failed {
			if now.Sub(at) > endedRetention {
				delete(s.failed, id)
			}
		}
	}
}

// take reports whether message id's job already ended here, and forgets
// it (if the new delete fails too, deleted records it again).
func (s *endedSet) take(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.failed[id]
	delete(s.failed, id)
	return ok
}
