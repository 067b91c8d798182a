package main

import (
	"encoding/json"
	"flag"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
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

// cell is s as one cell of a text table: as it is, or Go-quoted when it
// holds anything that could end the cell or the row or fool the eye
// (control and format characters, other spaces than ' ', invalid UTF-8)
// or starts with a quote.
func cell(s string) string {
	if strings.HasPrefix(s, `"`) || !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
