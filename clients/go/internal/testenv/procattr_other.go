//go:build !linux

package testenv

import "syscall"

// childProcAttr: outside Linux there is no parent-death signal; the tests'
// cleanups stop their processes.
func childProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
