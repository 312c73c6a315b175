package temporaltest

import "syscall"

// sysProcAttr makes the kernel kill the server when the thread that started it dies (see launch).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
