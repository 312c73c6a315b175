//go:build !unix

package nn

import "time"

// processCPUTime returns 0: the CPU time is not measured here.
func processCPUTime() time.Duration { return 0 }
