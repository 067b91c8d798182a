package enqueue

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func readAll(t *testing.T, in string, format Format, column string) ([]Input, error) {
	t.Helper()
	var got []Input
	err := ReadFile(strings.NewReader(in), format, column, func(i Input) error {
		if i.Err != nil {
			i.Username = "ERR:" + i.Err.Error()
			i.Err = nil
		}
		got = append(got, i)
		return nil
	})
	return got, err
}

func TestReadLines(t *testing.T) {
	in := "\xef\xbb\xbfalice\n\n  bob  \r\n\t\n#carol\nalice\n"
	got, err := readAll(t, in, Lines, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []Input{{Line: 1, Username: "alice"}, {Line: 3, Username: "bob"}, {Line: 5, Username: "#carol"}, {Line: 6, Username: "alice"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestReadCSV(t *testing.T) {
	in := "id, username ,email\n" +
		"1,alice,a@example.com\n" +
		"2,\"bob, the second\",b@example.com\n" + // a quoted comma
		"\n" +
		"3,\"multi\nline\",c@example.com\n" + // a quoted line break: line 5-6
		"4\n" + // too few fields: line 7
		"5,\"x\"y,z\n" + // a bare quote: line 8
		"6,carol,c@example.com\n" // line 9
	got, err := readAll(t, in, CSV, "username")
	if err != nil {
		t.Fatal(err)
	}
	lines := []int{}
	names := []string{}
	for _, g := range got {
		lines = append(lines, g.Line)
		names = append(names, g.Username)
	}
	if want := []int{2, 3, 5, 7, 8, 9}; !reflect.DeepEqual(lines, want) {
		t.Errorf("lines %v, want %v (%q)", lines, want, names)
	}
	if names[0] != "alice" || names[1] != "bob, the second" || names[2] != "multi\nline" || names[5] != "carol" ||
		!strings.HasPrefix(names[3], "ERR:the line has 1 fields") || !strings.HasPrefix(names[4], "ERR:CSV:") {
		t.Errorf("names %q", names)
	}
}

func TestReadCSVMissingColumn(t *testing.T) {
	_, err := readAll(t, "id,user\n1,alice\n", CSV, "username")
	var mc *MissingColumnError
	if !errors.As(err, &mc) || !strings.Contains(err.Error(), `no column "username"`) || !strings.Contains(err.Error(), `"id", "user"`) {
		t.Errorf("got %v, want a MissingColumnError naming the header", err)
	}
	if _, err := readAll(t, "", CSV, "username"); !errors.As(err, &mc) {
		t.Errorf("empty file: got %v", err)
	}
}

func TestReadJSONL(t *testing.T) {
	got, err := readAll(t, "{\"a\":1}\n\n  {\"b\":2}  \n", JSONL, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Line != 1 || string(got[0].Job) != `{"a":1}` || got[1].Line != 3 || string(got[1].Job) != `{"b":2}` {
		t.Errorf("got %+v", got)
	}
}

func TestCountItems(t *testing.T) {
	for _, c := range []struct {
		in     string
		format Format
		want   int
	}{{"a\n\nb\n  \nc", Lines, 3}, {"username\na\nb\n", CSV, 2}, {"", CSV, 0}} {
		n, err := CountItems(strings.NewReader(c.in), c.format)
		if err != nil || n != c.want {
			t.Errorf("CountItems(%q, %s) = %d, %v; want %d", c.in, c.format, n, err, c.want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("xml accepted")
	}
	if f, err := ParseFormat("csv"); err != nil || f != CSV {
		t.Errorf("csv: %v %v", f, err)
	}
}

// TestReadBOMQuotedHeader: a spreadsheet's CSV export (a UTF-8 BOM, then a
// quoted header and quoted records, CRLF) is read like any CSV, and a BOM
// is skipped in every format.
func TestReadBOMQuotedHeader(t *testing.T) {
	in := "\ufeff\"username\",\"email\"\r\n\"alice\",\"a@example.com\"\r\n\"bob\",\"b@example.com\"\r\n"
	got, err := readAll(t, in, CSV, "username")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Input{{Line: 2, Username: "alice"}, {Line: 3, Username: "bob"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		format Format
		in     string
		want   Input
	}{
		{CSV, "\ufeffusername\nalice\n", Input{Line: 2, Username: "alice"}},
		{CSV, "\ufeff\"username\"\n\"alice\"\n", Input{Line: 2, Username: "alice"}},
		{Lines, "\ufeffalice\n", Input{Line: 1, Username: "alice"}},
		{Lines, "\ufeff\n\ufeffalice\n", Input{Line: 2, Username: "\ufeffalice"}}, // only a leading BOM is one
		{JSONL, "\ufeff{\"a\":1}\n", Input{Line: 1, Job: []byte(`{"a":1}`)}},
	} {
		got, err := readAll(t, c.in, c.format, "username")
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
			t.Errorf("%s %q: got %+v, %v; want %+v", c.format, c.in, got, err, c.want)
		}
	}
	if n, err := CountItems(strings.NewReader("\ufeff\n"), Lines); err != nil || n != 0 {
		t.Errorf("CountItems of a BOM alone = %d, %v; want 0", n, err)
	}
}
