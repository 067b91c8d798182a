//go:build race

package ratelimit

// raceEnabled: the simulations, which run no goroutines, leave the race
// detector's run to `make test`'s separate run without it.
const raceEnabled = true
