package features

import (
	"fmt"
	"math"

	"github.com/pipe-ml/pipe/schema"
)

// Role is the split a row is assigned to.
type Role uint8

// Split roles of rows.
const (
	RoleTrain Role = iota
	RoleTrainDev
	RoleVal
	RoleTest
	numRoles
)

// String returns the role's split name in package schema (schema.SplitTrain, ...).
func (r Role) String() string {
	switch r {
	case RoleTrain:
		return schema.SplitTrain
	case RoleTrainDev:
		return schema.SplitTrainDev
	case RoleVal:
		return schema.SplitVal
	case RoleTest:
		return schema.SplitTest
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Ratios are the shares of the rows that go to each split.
//
// Train, Val and Test are shares of all rows and sum to 1. TrainDev is a share of all rows
// carved out of Train (a held-out slice of the training distribution, to tell variance from
// data mismatch): the rows of RoleTrain are a share Train - TrainDev, those of RoleTrainDev a
// share TrainDev. The zero TrainDev means no train_dev split.
type Ratios struct {
	Train, Val, Test, TrainDev float64
}

// shares returns the share of each Role, indexed by Role.
func (r Ratios) shares() [numRoles]float64 {
	return [numRoles]float64{RoleTrain: r.Train - r.TrainDev, RoleTrainDev: r.TrainDev, RoleVal: r.Val, RoleTest: r.Test}
}

// Validate reports whether the ratios are usable: each in [0, 1], Train > TrainDev ≥ 0 and
// Train + Val + Test = 1 (within 1e-9).
func (r Ratios) Validate() error {
	for _, s := range []struct {
		name string
		v    float64
	}{{"train", r.Train}, {"val", r.Val}, {"test", r.Test}, {"train_dev", r.TrainDev}} {
		if !(s.v >= 0 && s.v <= 1) {
			return fmt.Errorf("split: %s share %g is outside [0, 1]", s.name, s.v)
		}
	}
	if sum := r.Train + r.Val + r.Test; math.Abs(sum-1) > 1e-9 {
		return fmt.Errorf("split: train + val + test shares sum to %g, want 1 (train_dev is carved out of train)", sum)
	}
	if r.TrainDev >= r.Train {
		return fmt.Errorf("split: train_dev share %g must be smaller than the train share %g it is carved from", r.TrainDev, r.Train)
	}
	return nil
}

// DefaultRatios returns the default split shares for n rows.
//
// The rule: with n ≤ 10,000 rows, 70/15/15. Above, val and test each get the share
// 0.15·√(10,000/n), floored at 1%: each held-out split then holds 1,500·√(n/10,000) rows
// (10k rows: 1,500; 100k: 4,743, 4.7%; 1M: 15,000, 1.5%), so the held-out estimate keeps
// getting more precise while the training share grows, reaching 98/1/1 from 2.25M rows on
// (22,500+ rows each). TrainDev is 0.
func DefaultRatios(n int) Ratios {
	held := 0.15
	if n > 10_000 {
		held = max(0.15*math.Sqrt(10_000/float64(n)), 0.01)
	}
	return Ratios{Train: 1 - 2*held, Val: held, Test: held}
}

// HashRole assigns a row to a split from a hash of its key (e.g. its _row id or a hashed group
// key) and a seed, in one pass and without knowing the row count: each role's share is met
// approximately (binomially), and a key always gets the same role for a seed. r must be valid
// (see Ratios.Validate); an invalid share is clamped.
func HashRole(key uint64, seed uint64, r Ratios) Role {
	u := float64(mix64(key^mix64(seed+0x9e3779b97f4a7c15))>>11) / (1 << 53)
	s := r.shares()
	var cum float64
	for role := RoleTrain; role < numRoles; role++ {
		cum += max(s[role], 0)
		if u < cum {
			return role
		}
	}
	return RoleTrain
}

// mix64 is SplitMix64's finaliser, a bijective 64-bit mixer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// AchievedRatios returns the shares of rows per split in roles, in the form of Ratios (Train
// includes TrainDev, as in the input of Assign).
func AchievedRatios(roles []Role) Ratios {
	var counts [numRoles]int
	for _, r := range roles {
		if r < numRoles {
			counts[r]++
		}
	}
	n := float64(len(roles))
	if n == 0 {
		return Ratios{}
	}
	return Ratios{
		Train:    float64(counts[RoleTrain]+counts[RoleTrainDev]) / n,
		TrainDev: float64(counts[RoleTrainDev]) / n,
		Val:      float64(counts[RoleVal]) / n,
		Test:     float64(counts[RoleTest]) / n,
	}
}
