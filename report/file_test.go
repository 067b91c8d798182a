package report

import (
	"os"
	"path/filepath"
	"testing"
)

// old writes a previous report at path, mode 0644, and returns it.
func old(t *testing.T, path string) string {
	t.Helper()
	const content = "username,status\nprevious,CONFIRMED\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return content
}

// only fails unless dir holds exactly name: no temporary file is left.
func only(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %v, want only %s", dir, names, name)
	}
}

// TestFileKeepsThePreviousReportOnFailure: until Commit, the previous
// report is whole; Abort removes what was written aside.
func TestFileKeepsThePreviousReportOnFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "report.csv")
	want := old(t, path)
	f, err := CreateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("username,status\nhalf"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("the previous report changed before Commit: %q", b)
	}
	f.Abort()
	f.Abort() // twice is harmless
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("after Abort: %q, want the previous report", b)
	}
	only(t, dir, "report.csv")
	if err := f.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
}

// TestFileCommit0600: the new report replaces the previous one, mode 0600
// though the previous was 0644 and whatever the umask lets through; a
// new file is 0600 too.
func TestFileCommit0600(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"report.csv", "new.jsonl"} {
		path := filepath.Join(dir, name)
		if name == "report.csv" {
			old(t, path)
		}
		f, err := CreateFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := f.Stat(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: written aside with mode %v", name, fi.Mode().Perm())
		}
		f.WriteString("new\n")
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
		f.Abort() // after Commit: nothing
		b, err := os.ReadFile(path)
		if err != nil || string(b) != "new\n" {
			t.Errorf("%s: %q %v", name, b, err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d files: a temporary file was left", len(entries))
	}
}

// TestFileRelative: a bare name is written aside in the working directory.
func TestFileRelative(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	f, err := CreateFile("r.csv")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(f.Name()) != "." {
		t.Errorf("written aside in %s", f.Name())
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	only(t, dir, "r.csv")
}

func TestFileRefusesADirectory(t *testing.T) {
	t.Parallel()
	if f, err := CreateFile(t.TempDir()); err == nil {
		f.Abort()
		t.Error("a directory taken as the report file")
	}
}

// TestFileDevice: a device is written to as it is (nothing to rename).
func TestFileDevice(t *testing.T) {
	t.Parallel()
	f, err := CreateFile(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("x\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode().IsRegular() {
		t.Fatalf("%s replaced: %v %v", os.DevNull, fi, err)
	}
}

// TestSameFile: --records and --from name one file when their paths are
// one once cleaned and absolute, or when both exist and are one file.
func TestSameFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("users.csv", []byte("alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile("other.csv", []byte("bob\n"), 0o600)
	if err := os.Link("users.csv", "hard.csv"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("users.csv", "sym.csv"); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(dir, "users.csv")
	tests := []struct {
		a, b string
		want bool
	}{
		{"users.csv", "users.csv", true},
		{"./users.csv", "users.csv", true},
		{"sub/../users.csv", abs, true},
		{"users.csv", "hard.csv", true},
		{"sym.csv", "users.csv", true},
		{"missing.csv", "./missing.csv", true},
		{"users.csv", "other.csv", false},
		{"missing.csv", "users.csv", false},
		{"users.csv", "", false},
		{"-", "-", false},
	}
	for _, tt := range tests {
		if got := SameFile(tt.a, tt.b); got != tt.want {
			t.Errorf("SameFile(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
