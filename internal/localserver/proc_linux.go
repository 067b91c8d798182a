package localserver

import (
	"os"
	"syscall"
)

// sysProcAttr puts the server in its own process group (so Kill can kill
// any children too) and asks the kernel to SIGKILL it when its parent
// thread dies, so a killed test binary leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the process group led by p.
func killGroup(p *os.Process) error {
	return syscall.Kill(-p.Pid, syscall.SIGKILL)
}
