//go:build unix

package ratelimit

import (
	"fmt"
	"os"
	"syscall"
)

// private makes sure dir is a folder (not a link to one) that this
// process's user owns, closed to other users (mode 0700, set if wider).
func private(dir string) error {
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a folder", dir)
	}
	if !ours(info) {
		return fmt.Errorf("%s belongs to another user", dir)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// ours reports whether this process's user owns the file.
func ours(info os.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return !ok || int(st.Uid) == os.Getuid()
}
