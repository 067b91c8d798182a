//go:build unix && !linux

package localserver

import (
	"os"
	"syscall"
)

// sysProcAttr puts the server in its own process group so Kill can kill any
// children too. There is no parent-death signal here: rely on Kill.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills the process group led by p.
func killGroup(p *os.Process) error {
	return syscall.Kill(-p.Pid, syscall.SIGKILL)
}
