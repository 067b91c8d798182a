package main

import (
	"encoding/json"
	"flag"
	"io"
)

// outputFlag registers --output (text or json) for a command that prints a result.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("output", "text", "result format: text or json")
}

// checkOutput is a usage error unless format is text or json.
func checkOutput(format string) error {
	if format != "text" && format != "json" {
		return usagef("--output %q: want text or json", format)
	}
	return nil
}

// writeResult prints v as indented JSON with --output json, else runs text.
func writeResult(w io.Writer, format string, v any, text func(io.Writer) error) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return text(w)
}
