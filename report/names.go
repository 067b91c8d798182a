package report

import (
	"hash/maphash"
	"strings"
)

// nameSet is the users a report has seen, as a 64-bit keyed hash of pool
// and username (about 16 bytes a user). It is not safe for concurrent use.
type nameSet struct {
	seed maphash.Seed
	seen map[uint64]struct{}
}

func newNameSet() *nameSet {
	return &nameSet{seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}}
}

// add adds name of pool and reports whether it was new; with fold, names
// are compared lower-cased.
func (s *nameSet) add(pool, name string, fold bool) bool {
	k := s.key(pool, name, fold)
	if _, ok := s.seen[k]; ok {
		return false
	}
	s.seen[k] = struct{}{}
	return true
}

// has reports whether name of pool was added, compared as add compares it.
func (s *nameSet) has(pool, name string, fold bool) bool {
	_, ok := s.seen[s.key(pool, name, fold)]
	return ok
}

func (s *nameSet) key(pool, name string, fold bool) uint64 {
	if fold {
		name = strings.ToLower(name)
	}
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(pool)
	h.WriteByte(0)
	h.WriteString(name)
	return h.Sum64()
}
