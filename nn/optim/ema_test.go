package optim

import (
	"math"
	"testing"
)

func TestEMA(t *testing.T) {
	// One param of two values, decay 0.5, values after each update: x1 = (2, 0), x2 = (4, 1),
	// x3 = (8, -1). Bias-corrected average: sum_i d^(t-i) x_i (1-d) / (1-d^t).
	//   t=1: x1 = (2, 0)
	//   t=2: (0.5*x1 + x2) * 0.5 / 0.75 = ((1, 0) + (4, 1)) * 2/3 = (10/3, 2/3)
	//   t=3: (0.25*x1 + 0.5*x2 + x3) * 0.5 / 0.875
	//        = ((0.5, 0) + (2, 0.5) + (8, -1)) * 4/7 = (6, -2/7)
	p := &Param{Name: "w", Value: []float32{7, 7}, Grad: make([]float32, 2)}
	frozen := &Param{Name: "f", Value: []float32{5}, Frozen: true}
	ps := []*Param{p, frozen}
	e := NewEMA(ps, 0.5)
	seq := [][2]float32{{2, 0}, {4, 1}, {8, -1}}
	want := [][2]float64{{2, 0}, {10.0 / 3, 2.0 / 3}, {6, -2.0 / 7}}
	for step, x := range seq {
		copy(p.Value, x[:])
		frozen.Value[0] = float32(step)
		e.Update(ps)
		live := append([]float32(nil), p.Value...)
		e.Swap(ps)
		for i := range 2 {
			if math.Abs(float64(p.Value[i])-want[step][i]) > 1e-6 {
				t.Fatalf("t=%d: average %v, want %v", step+1, p.Value, want[step])
			}
		}
		if frozen.Value[0] != float32(step) {
			t.Fatal("Swap touched a frozen param")
		}
		e.Swap(ps)
		for i := range 2 {
			if math.Float32bits(p.Value[i]) != math.Float32bits(live[i]) {
				t.Fatalf("Swap twice gave %v, want %v", p.Value, live)
			}
		}
	}

	// State round trip: continue a restored copy and an uninterrupted one.
	b, err := e.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	r := NewEMA(nil, 0.9)
	if err := r.UnmarshalState(b); err != nil {
		t.Fatal(err)
	}
	if r.Decay() != 0.5 {
		t.Errorf("restored decay %v", r.Decay())
	}
	q := &Param{Name: "w", Value: []float32{1, 3}}
	copy(p.Value, q.Value)
	e.Update(ps)
	r.Update([]*Param{q})
	e.Swap(ps)
	r.Swap([]*Param{q})
	for i := range 2 {
		if math.Float32bits(p.Value[i]) != math.Float32bits(q.Value[i]) {
			t.Fatalf("restored EMA %v, uninterrupted %v", q.Value, p.Value)
		}
	}
	if err := r.UnmarshalState(b[:10]); err == nil {
		t.Error("truncated state accepted")
	}
}

func TestEMADefaultsAndChecks(t *testing.T) {
	if d := NewEMA(nil, 0).Decay(); d != 0.999 {
		t.Errorf("default decay %v", d)
	}
	for _, bad := range []float64{-0.1, 1, 1.5, math.NaN()} {
		if CheckEMADecay(bad) == nil {
			t.Errorf("decay %v accepted", bad)
		}
	}
	p := &Param{Name: "w", Value: make([]float32, 1000)}
	e := NewEMA([]*Param{p}, 0.99)
	ps := []*Param{p}
	if a := testing.AllocsPerRun(10, func() { e.Update(ps); e.Swap(ps); e.Swap(ps) }); a != 0 {
		t.Errorf("%v allocations per Update+Swap", a)
	}
}
