//go:build !linux

package redisserver

import "syscall"

// sysProcAttr has nothing to add here: rely on Close.
func sysProcAttr() *syscall.SysProcAttr { return nil }
