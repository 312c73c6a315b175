//go:build !linux

package train

import "errors"

// ring is io_uring's reader on Linux; elsewhere rows are read with pread.
type ring struct{ entries uint32 }

const ringSizeEntries = 64

var errRingBroken = errors.New("io_uring is Linux only")

func newRing(uint32) (*ring, error) { return nil, errRingBroken }

func (r *ring) close() {}

func (r *ring) readAt(int, []int64, int, []byte) (int, bool, error) { return 0, false, errRingBroken }
