//go:build unix

package job

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// fakeFileInfo is a file of mode perm owned by uid, as Unix reports it.
type fakeFileInfo struct {
	os.FileInfo
	perm os.FileMode
	sys  any
}

func (f fakeFileInfo) Mode() os.FileMode { return f.perm }
func (f fakeFileInfo) Sys() any          { return f.sys }

// TestCheckKeyFileMode: the owner's own file may be open to nobody else; a
// file another user owns (a Kubernetes Secret: root's, group fsGroup) may
// be read by its group, not by others; without a Unix owner (Windows)
// nothing is checked.
func TestCheckKeyFileMode(t *testing.T) {
	t.Parallel()
	const me, root = 65532, 0
	owned := func(uid uint32) any { return &syscall.Stat_t{Uid: uid} }
	for _, tc := range []struct {
		name string
		perm os.FileMode
		sys  any
		err  string
	}{
		{"mine 0600", 0o600, owned(me), ""},
		{"mine 0400", 0o400, owned(me), ""},
		{"mine 0440", 0o440, owned(me), "chmod 600"},
		{"mine 0644", 0o644, owned(me), "chmod 600"},
		{"secret 0440 via fsGroup", 0o440, owned(root), ""},
		{"secret 0400", 0o400, owned(root), ""},
		{"secret 0644, no defaultMode", 0o644, owned(root), "chmod o= "},
		{"secret 0444", 0o444, owned(root), "defaultMode: 0440"},
		{"no owner (Windows)", 0o666, nil, ""},
		{"an owner that is not a number", 0o666, &struct{ Uid string }{"glenda"}, ""},
	} {
		err := checkKeyFileMode("keys", fakeFileInfo{perm: tc.perm, sys: tc.sys}, me)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}
