//go:build unix

package pipeline

import (
	"errors"
	"syscall"
)

// processAlive says whether a process with this pid exists on this host.
func processAlive(pid int) (alive, known bool) {
	err := syscall.Kill(pid, 0)
	switch {
	case err == nil, errors.Is(err, syscall.EPERM):
		return true, true
	case errors.Is(err, syscall.ESRCH):
		return false, true
	}
	return false, false
}
