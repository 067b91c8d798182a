package enqueue

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
)

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestRunDedupeMemoryBounded: while a run is under way, the users it has
// seen cost a few bytes each, not their names (about 100 B with a map of
// strings).
func TestRunDedupeMemoryBounded(t *testing.T) {
	const n = 20_000
	var perUser float64
	src := func(_ context.Context, fn func(Input) error) error {
		var base uint64
		for i := range n {
			switch i {
			case 0:
				base = liveHeap()
			case n - 1: // fn, which holds the set, is still live
				perUser = (float64(liveHeap()) - float64(base)) / (n - 1)
			}
			if err := fn(Input{Line: i + 1, Username: "user" + strconv.Itoa(i) + "@example.com"}); err != nil {
				return err
			}
		}
		return nil
	}
	s, err := newRunner(nil, func(c *Config) { c.DryRun = true }).Run(t.Context(), src)
	if err != nil || s.WouldEnqueue != n {
		t.Fatalf("summary %+v, %v", s, err)
	}
	t.Logf("%.1f B a user", perUser)
	if perUser > 32 {
		t.Errorf("%.1f B a user, want at most 32", perUser)
	}
}

// TestUserSetBytesPerEntry: a million users take at most 24 B each.
func TestUserSetBytesPerEntry(t *testing.T) {
	const n = 1_000_000
	base := liveHeap()
	s := newUserSet()
	for i := range n {
		if !s.Add(pool, "user"+strconv.Itoa(i), false) {
			t.Fatalf("user%d seen twice", i)
		}
	}
	perUser := (float64(liveHeap()) - float64(base)) / n
	runtime.KeepAlive(s)
	t.Logf("%.1f B a user", perUser)
	if perUser > 24 {
		t.Errorf("%.1f B a user, want at most 24", perUser)
	}
}

// TestUserSetExact: names that differ by one character, by case, or by
// pool are different users; only the same name (or, folded, the same name
// in another case) is seen again.
func TestUserSetExact(t *testing.T) {
	s := newUserSet()
	var names []string
	for _, p := range []string{"", "a", "A", "é", "É", "user", "User", "USER", "user ", "0", "00"} {
		for i := range 1000 {
			names = append(names, p+fmt.Sprint(i), fmt.Sprint(i)+p)
		}
	}
	added := map[string]bool{}
	for _, pl := range []string{pool, "eu-west-1_AbC124", "us-east-1_AbC123"} {
		for _, n := range names {
			if s.Add(pl, n, false) == added[pl+"\x00"+n] {
				t.Fatalf("Add(%q, %q) after %d distinct users: new %v, want %v", pl, n, len(added), added[pl+"\x00"+n], !added[pl+"\x00"+n])
			}
			added[pl+"\x00"+n] = true
		}
	}
	for _, c := range []struct {
		a, b string
		fold bool
		same bool
	}{
		{"Alice", "alice", true, true},
		{"ALICE@EXAMPLE.COM", "alice@example.com", true, true},
		{"Émile", "émile", true, true},
		{"Bob", "bob", false, false},
		{"carol", "carol ", true, false},
	} {
		s := newUserSet()
		s.Add(pool, c.a, c.fold)
		if again := !s.Add(pool, c.b, c.fold); again != c.same {
			t.Errorf("%q then %q (fold %v): seen again %v, want %v", c.a, c.b, c.fold, again, c.same)
		}
	}
}
