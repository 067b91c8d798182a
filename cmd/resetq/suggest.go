package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// closest is the candidate nearest to name and whether it is near enough to
// be a likely slip of the keyboard: at most max(2, len(name)/3) edits.
// Names are compared in upper case, and also with the separator sep left
// out, so GLOBALSIGNOUT finds GLOBAL_SIGN_OUT. Ties go to the first in
// sorted order, so the answer does not depend on the candidates' order.
func closest(name string, candidates []string, sep string) (string, bool) {
	best, bestDist := "", -1
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		if d := nameDistance(name, c, sep); bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best, bestDist >= 0 && bestDist <= max(2, len(name)/3)
}

// nameDistance is the edit distance of a and b ignoring case, or without
// their separators sep if that is smaller.
func nameDistance(a, b, sep string) int {
	a, b = strings.ToUpper(a), strings.ToUpper(b)
	return min(levenshtein(a, b), levenshtein(strings.ReplaceAll(a, sep, ""), strings.ReplaceAll(b, sep, "")))
}

// levenshtein is the number of single-byte insertions, deletions and
// substitutions that turn a into b (names here are ASCII).
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// nearest is the nearest of own if near enough, else the nearest of others.
func nearest(name string, own, others []string, sep string) (string, bool) {
	if s, ok := closest(name, own, sep); ok {
		return s, true
	}
	return closest(name, others, sep)
}

// hint ends a message about a misspelt name: the likely meant one, or
// where to find the real ones.
func hint(meant string, near bool, command string) string {
	if near {
		return fmt.Sprintf(" (did you mean %s?)", meant)
	}
	return fmt.Sprintf(" (see %s --help)", command)
}

// envPrefix starts the name of every flag's environment twin.
const envPrefix = "RESETQ_"

// unknownEnvError names a RESETQ_* variable that no command reads, and the
// setting it was most likely meant to be: first among the twins of the
// command's own flags, then among every command's. The common prefix is
// left out of the comparison, so it does not make every name look near.
func unknownEnvError(name string, own, all []string, command string) error {
	trim := func(names []string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = strings.TrimPrefix(n, envPrefix)
		}
		return out
	}
	meant, near := nearest(strings.TrimPrefix(name, envPrefix), trim(own), trim(all), "_")
	return usagef("%s is not a resetq setting%s", name, hint(envPrefix+meant, near, command))
}

// undefinedFlagPrefix starts the flag package's error for a flag the set
// does not define; the message is unchanged since Go 1, and tests elsewhere
// look for it, so it is kept.
const undefinedFlagPrefix = "flag provided but not defined: -"

// flagMention finds the flag in the flag package's other parse errors
// ("invalid value "x" for flag -rate: ...", "invalid boolean value "x" for
// -watch: ...", "flag needs an argument: -rate"), to spell it --rate as the
// help and the README do.
var flagMention = regexp.MustCompile(`^(invalid value .* for flag |invalid boolean value .* for |flag needs an argument: )-`)

// parseErrorText is the flag package's parse error err in one line, the
// flag spelt --name, with the nearest real flag for an unknown one.
func parseErrorText(err error, command string, flags []string) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, undefinedFlagPrefix); ok {
		meant, near := closest(name, flags, "-")
		return "flag provided but not defined: --" + name + hint("--"+meant, near, command)
	}
	return flagMention.ReplaceAllString(msg, "${1}--")
}
