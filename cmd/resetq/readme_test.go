package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeStartsACampaign: the README's first 80 lines take a security
// engineer from nothing to a report (preflight, enqueue, work, status,
// dlq, report), and every flag those lines give a command is one of that
// command's flags, so the quick start cannot drift from the code.
func TestReadmeStartsACampaign(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	head := strings.Join(lines[:min(80, len(lines))], "\n")
	flags := collectFlags()
	seen := map[string]bool{}
	cmdLine := regexp.MustCompile(`(?m)^resetq (\w+)( (?:summary|list|redrive))?((?: .*)?)$`)
	for _, m := range cmdLine.FindAllStringSubmatch(head, -1) {
		set := "resetq " + m[1] + m[2]
		seen[m[1]] = true
		known, ok := flags[set]
		if !ok {
			t.Errorf("README: %q is no resetq command", set)
			continue
		}
		for _, f := range regexp.MustCompile(`(?:^| )--([a-z][a-z-]*)`).FindAllStringSubmatch(m[3], -1) {
			if !slices.Contains(known, f[1]) {
				t.Errorf("README: %s has no flag --%s", set, f[1])
			}
		}
	}
	for _, c := range []string{"preflight", "enqueue", "work", "status", "dlq", "report"} {
		if !seen[c] {
			t.Errorf("the README's first 80 lines do not show resetq %s", c)
		}
	}
}
