package pipeline

import (
	"hash/fnv"
	"math/rand/v2"
)

// DeriveSeed returns the seed of one random step: a hash of the run seed, the stage name and
// any indexes (member, trial, epoch). Every random choice in pipe is seeded this way, so a
// stage's randomness does not depend on other stages, on scheduling or on worker count.
func DeriveSeed(runSeed uint64, stage string, index ...uint64) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	put := func(v uint64) {
		for i := range buf {
			buf[i] = byte(v >> (8 * i))
		}
		h.Write(buf[:])
	}
	put(runSeed)
	h.Write([]byte(stage))
	for _, i := range index {
		put(i)
	}
	return splitmix(h.Sum64())
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// NewRand returns a PCG generator for a derived seed.
func NewRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, splitmix(seed^0x5851f42d4c957f2d)))
}
