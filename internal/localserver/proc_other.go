//go:build !unix

package localserver

import (
	"os"
	"syscall"
)

// sysProcAttr has nothing to add on this platform.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills p only: there are no process groups here.
func killGroup(p *os.Process) error { return p.Kill() }
