package testenv

import "syscall"

// childProcAttr makes the kernel kill a child when the test binary dies
// (a panic, a -timeout), so that no redis-server or service outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
