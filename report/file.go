package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a report file (--records) written aside and put in place by
// Commit, so that a previous report at the path stays whole until the new
// one is complete. It is created 0600, as it holds personal data. It is
// not safe for concurrent use.
type File struct {
	*os.File        // what the records are written to
	path     string // where Commit puts it
	aside    bool   // File is a temporary file beside path
	ended    bool
}

// CreateFile starts the report file at path: a temporary file, mode 0600,
// in path's directory; or, when path is a device or a pipe (/dev/stdout),
// path itself. A directory is refused.
func CreateFile(path string) (*File, error) {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return nil, fmt.Errorf("%s is a directory", path)
	case err == nil && !fi.Mode().IsRegular():
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &File{File: f, path: path}, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil { // CreateTemp's 0600, less the umask: exactly 0600
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, path: path, aside: true}, nil
}

// Commit writes the file through to disk and renames it over the path: a
// previous report is replaced at once, by a file of mode 0600. On an error
// the temporary file is removed and the previous report stays.
func (f *File) Commit() error {
	if f.ended {
		return errors.New("report file: already committed or aborted")
	}
	f.ended = true
	if !f.aside {
		return f.Close()
	}
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Abort removes the temporary file and leaves a previous report as it
// was; after Commit it does nothing.
func (f *File) Abort() {
	if f.ended {
		return
	}
	f.ended = true
	f.Close()
	if f.aside {
		os.Remove(f.Name())
	}
}

// SameFile reports whether paths a and b name one file: the same path once
// cleaned and made absolute, or, both existing, the same file (a link or
// another spelling). "-" (standard input or output) is no file.
func SameFile(a, b string) bool {
	if a == "" || b == "" || a == "-" || b == "-" {
		return false
	}
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	if errA == nil && errB == nil && absA == absB {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}
