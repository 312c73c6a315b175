//go:build !linux

package temporaltest

import "syscall"

// sysProcAttr has nothing to set outside Linux: a test binary that dies there may leave its
// server running until the server is stopped by hand.
func sysProcAttr() *syscall.SysProcAttr { return nil }
