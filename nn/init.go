package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// initializer fills a weight tensor of fan-in/fan-out shape.
type initializer uint8

const (
	initHeNormal initializer = iota
	initHeUniform
	initGlorotNormal
	initGlorotUniform
	initLecunNormal
	initZeros
)

var initNames = map[string]initializer{
	"he_normal": initHeNormal, "he_uniform": initHeUniform, "glorot_normal": initGlorotNormal,
	"glorot_uniform": initGlorotUniform, "lecun_normal": initLecunNormal, "zeros": initZeros,
}

func parseInit(s string) (initializer, error) {
	v, ok := initNames[s]
	if !ok {
		return 0, fmt.Errorf("unknown init %q (want he_normal, he_uniform, glorot_normal, glorot_uniform, lecun_normal or zeros)", s)
	}
	return v, nil
}

// defaultInit follows the activation: He normal for the ReLU family, Glorot uniform otherwise.
func defaultInit(name string, act activation) initializer {
	if name != "" {
		v, _ := parseInit(name) // validated by Spec.withDefaults
		return v
	}
	if act.reluFamily() {
		return initHeNormal
	}
	return initGlorotUniform
}

// fill draws w (fanIn×fanOut values) from the initializer's distribution:
// he_normal N(0, 2/fanIn), he_uniform U(±√(6/fanIn)), glorot_normal N(0, 2/(fanIn+fanOut)),
// glorot_uniform U(±√(6/(fanIn+fanOut))), lecun_normal N(0, 1/fanIn). Normal draws are not
// truncated.
func (in initializer) fill(w []float32, fanIn, fanOut int, rng *rand.Rand) {
	fi, fo := float64(fanIn), float64(fanOut)
	normal := func(std float64) {
		for i := range w {
			w[i] = float32(rng.NormFloat64() * std)
		}
	}
	uniform := func(limit float64) {
		for i := range w {
			w[i] = float32((2*rng.Float64() - 1) * limit)
		}
	}
	switch in {
	case initHeNormal:
		normal(math.Sqrt(2 / fi))
	case initHeUniform:
		uniform(math.Sqrt(6 / fi))
	case initGlorotNormal:
		normal(math.Sqrt(2 / (fi + fo)))
	case initGlorotUniform:
		uniform(math.Sqrt(6 / (fi + fo)))
	case initLecunNormal:
		normal(math.Sqrt(1 / fi))
	case initZeros:
		clear(w)
	}
}
