package worker

import (
	"sync"
	"time"
)

// endedRetention is how long the ID of a job whose delete failed is
// remembered. The message comes back once its visibility timeout ends
// (minutes at most); an hour is ample and keeps the set small.
const endedRetention = time.Hour

// endedSet remembers, by message ID (which SQS keeps across deliveries),
// the jobs that ended in this process but whose message could not be
// deleted, so that a redelivery is deleted instead of run twice. After a
// crash the redelivery check (AdminGetUser) does that instead.
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
