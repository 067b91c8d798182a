package enqueue

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Input is one item of a source: a username (lines, CSV, Cognito) or a
// whole job object (JSONL).
type Input struct {
	// Line is the 1-based line number in the input file (for Cognito
	// sources, the user's position in the listing).
	Line int
	// Username is the user to reset, for every format but JSONL.
	Username string
	// Job is the raw job object of a JSONL line.
	Job []byte
	// Err is why the input line could not be read (a CSV line with too few
	// fields, a quote error); the line is reported invalid.
	Err error
}

// Format is an input file format.
type Format string

// Input file formats.
const (
	Lines Format = "lines" // one username a line
	CSV   Format = "csv"   // a header line, then records; a column holds the username
	JSONL Format = "jsonl" // one job object a line
)

// ParseFormat returns the Format named s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Lines, CSV, JSONL:
		return f, nil
	}
	return "", fmt.Errorf("--format %q: want lines, csv or jsonl", s)
}

// MissingColumnError is a CSV file without the column asked for.
type MissingColumnError struct {
	Column string
	Header []string
}

func (e *MissingColumnError) Error() string {
	return fmt.Sprintf("the CSV header has no column %q (it has %s)", e.Column, quoteList(e.Header))
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// maxLine bounds an input line: a job is at most 64 KiB, a username 128
// characters.
const maxLine = 1 << 20

// ReadFile reads r in format, calling fn for every item in order. Blank
// lines (and, in lines and JSONL, surrounding white space, which no
// username may contain) are skipped. There are no comment lines: "#" may
// begin a username. A leading UTF-8 byte order mark is skipped. column
// names the CSV column of usernames. An error of fn stops the reading and
// is returned.
func ReadFile(r io.Reader, format Format, column string, fn func(Input) error) error {
	r = skipBOM(r)
	switch format {
	case Lines, JSONL:
		return readLines(r, format, fn)
	case CSV:
		return readCSV(r, column, fn)
	}
	return fmt.Errorf("unknown format %q", format)
}

var bom = []byte("\xef\xbb\xbf")

// skipBOM is r without its leading UTF-8 byte order mark, if it has one.
func skipBOM(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, _ := br.Peek(len(bom)); bytes.Equal(b, bom) {
		_, _ = br.Discard(len(bom))
	}
	return br
}

func readLines(r io.Reader, format Format, fn func(Input) error) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), maxLine)
	line := 0
	for s.Scan() {
		line++
		b := bytes.TrimSpace(s.Bytes())
		if len(b) == 0 {
			continue
		}
		in := Input{Line: line}
		if format == JSONL {
			in.Job = bytes.Clone(b)
		} else {
			in.Username = string(b)
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("read line %d: %w", line+1, err)
	}
	return nil
}

func readCSV(r io.Reader, column string, fn func(Input) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return &MissingColumnError{Column: column}
	}
	if err != nil {
		return fmt.Errorf("read the CSV header: %w", err)
	}
	col := -1
	names := make([]string, len(header))
	for i, h := range header {
		names[i] = strings.TrimSpace(h)
		if names[i] == column && col < 0 {
			col = i
		}
	}
	if col < 0 {
		return &MissingColumnError{Column: column, Header: names}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var in Input
		var perr *csv.ParseError
		switch {
		case errors.As(err, &perr):
			in = Input{Line: perr.StartLine, Err: fmt.Errorf("CSV: %v", perr.Err)}
		case err != nil:
			return fmt.Errorf("read the CSV: %w", err)
		case len(rec) == 1 && strings.TrimSpace(rec[0]) == "":
			continue // a blank line
		case col >= len(rec):
			line, _ := cr.FieldPos(0)
			in = Input{Line: line, Err: fmt.Errorf("the line has %d fields, no %q (field %d)", len(rec), column, col+1)}
		default:
			line, _ := cr.FieldPos(col)
			in = Input{Line: line, Username: strings.TrimSpace(rec[col])}
		}
		if err := fn(in); err != nil {
			return err
		}
	}
}

// CountItems counts the non-blank lines of r, less a CSV header: the total
// for the progress ETA (a CSV field with line breaks makes it an estimate).
func CountItems(r io.Reader, format Format) (int, error) {
	s := bufio.NewScanner(skipBOM(r))
	s.Buffer(make([]byte, 64<<10), maxLine)
	n := 0
	for s.Scan() {
		if len(bytes.TrimSpace(s.Bytes())) > 0 {
			n++
		}
	}
	if format == CSV && n > 0 {
		n--
	}
	return n, s.Err()
}
