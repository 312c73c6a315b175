package search

import (
	"math/rand/v2"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

// FuzzParseSpace checks that any decoded TOML either parses into a space whose samples stay
// inside their bounds and their zoomed regions, or fails with SpaceErrors; never a panic.
func FuzzParseSpace(f *testing.F) {
	for _, doc := range []string{
		syntheticSpace,
		noisySpace,
		`a = { choice = [1, 2], when = { b = 1 } }` + "\n" + `b = { choice = [1, 2], when = { a = 1 } }`,
		`x = { int = [-3, 3] }` + "\n" + `y = { log_int = [1, 2], when = { z = "q" } }` + "\n" + `z = { choice = ["q", { k = [1] }] }`,
		`o.p = { uniform = [0.0, 1e300] }`,
		`lr = { log_uniform = [1e-300, 1e300] }`,
		`i = { int = [-2251799813685248, 2251799813685248] }` + "\n" + `k = { log_int = [1, 2251799813685248] }`,
	} {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var raw map[string]any
		if toml.Unmarshal([]byte(doc), &raw) != nil {
			return
		}
		s, err := ParseSpace(raw, raw)
		if err != nil {
			return
		}
		rng := rand.New(rand.NewPCG(1, 2))
		full := s.Region()
		var top []Params
		for range 8 {
			p := s.Sample(full, rng)
			checkInside(t, s, full, p)
			top = append(top, p)
		}
		z := s.Zoom(full, top[:3], ZoomConfig{})
		for range 8 {
			checkInside(t, s, z, s.Sample(z, rng))
		}
	})
}

func checkInside(t *testing.T, s *Space, r Region, p Params) {
	t.Helper()
	for name, v := range p {
		param, ok := s.Param(name)
		if !ok {
			t.Fatalf("sampled %q, which is not in the space", name)
		}
		if param.Dist.integer() {
			if _, ok := v.(int64); !ok {
				t.Fatalf("%s = %T, want int64", name, v)
			}
		}
		if x, ok := number(v); ok && param.Dist != Choice && (x < param.Lo || x > param.Hi) {
			t.Fatalf("%s = %v outside [%g, %g]", name, v, param.Lo, param.Hi)
		}
		if !s.Contains(r, name, v) {
			t.Fatalf("%s = %v is outside the region it was drawn from: %+v", name, v, r.Ranges[name])
		}
	}
}
