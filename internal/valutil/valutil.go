// Package valutil fills a config's defaults: each XConfig's withDefaults
// (or WithDefaults) sets its fields with these, apart from its Validate.
package valutil

import "time"

// ValOrDefault is val, or def when val is the zero value.
func ValOrDefault[T comparable](val, def T) T {
	var zero T
	if val == zero {
		return def
	}
	return val
}

// PositiveOrDefault is val, or def when val is zero or negative.
func PositiveOrDefault[T int | int64 | float64 | time.Duration](val, def T) T {
	if val <= 0 {
		return def
	}
	return val
}
