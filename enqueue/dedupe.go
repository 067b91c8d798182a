package enqueue

import (
	"hash/maphash"
	"strings"
)

// shardBits picks a userSet's shard: 1024 tables that grow one at a time,
// so the set never doubles all at once.
const shardBits = 10

// userSet is the users seen in a run as a 74-bit keyed hash of pool and
// username (10 bits pick the shard, 64 are stored): 11 to 22 bytes a user.
// docs/benchmarks.md has the odds that two users share a hash. Make it
// with newUserSet; it is not safe for concurrent use.
type userSet struct {
	stored, shard maphash.Seed
	h             maphash.Hash
	shards        []userShard
}

// userShard is an open-addressing table of stored hashes (0 is an empty
// slot), linear probing, grown to twice its size beyond 3/4 full.
type userShard struct {
	slots []uint64
	n     int
}

func newUserSet() *userSet {
	return &userSet{stored: maphash.MakeSeed(), shard: maphash.MakeSeed(), shards: make([]userShard, 1<<shardBits)}
}

// Add adds the user name of pool and reports whether it was not in the set.
// With fold, name is compared lower-cased (strings.ToLower), as in a pool
// whose usernames are not case-sensitive.
func (s *userSet) Add(pool, name string, fold bool) bool {
	if fold {
		name = strings.ToLower(name)
	}
	v := s.sum(s.stored, pool, name)
	if v == 0 {
		v = 1 // 0 marks an empty slot
	}
	sh := &s.shards[s.sum(s.shard, pool, name)>>(64-shardBits)]
	if 4*(sh.n+1) > 3*len(sh.slots) {
		sh.grow()
	}
	mask := uint64(len(sh.slots) - 1)
	for i := v & mask; ; i = (i + 1) & mask {
		switch sh.slots[i] {
		case 0:
			sh.slots[i] = v
			sh.n++
			return true
		case v:
			return false
		}
	}
}

func (s *userSet) sum(seed maphash.Seed, pool, name string) uint64 {
	s.h.SetSeed(seed)
	s.h.WriteString(pool)
	s.h.WriteByte(0) // no pool ID has one
	s.h.WriteString(name)
	return s.h.Sum64()
}

func (sh *userShard) grow() {
	old := sh.slots
	sh.slots = make([]uint64, max(2*len(old), 8))
	mask := uint64(len(sh.slots) - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		i := v & mask
		for sh.slots[i] != 0 {
			i = (i + 1) & mask
		}
		sh.slots[i] = v
	}
}
