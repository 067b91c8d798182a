package redisserver

import "syscall"

// sysProcAttr asks the kernel to SIGKILL the server when the thread that
// started it dies, so a killed test binary leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
