//go:build unix

package nn

import (
	"syscall"
	"time"
)

// processCPUTime returns the CPU time (user + system) the process has used, or 0 when unknown.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
