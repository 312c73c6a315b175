package optim

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// quadGrad is the gradient of 0.5*sum_i a_i*(w_i - c_i)^2 for one "row" (a, c).
func quadGrad(p *Param, a, c []float32) {
	for i := range p.Value {
		p.Grad[i] = a[i] * (p.Value[i] - c[i])
	}
}

func TestSVRGSnapshotAndVarianceReduce(t *testing.T) {
	opt, err := New(Config{Name: "SVRG", LR: 0.1, SnapshotEpochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	o := opt.(*SVRG)
	if o.Inner().Name() != NameSGD {
		t.Fatalf("inner %q, want sgd by default", o.Inner().Name())
	}
	p := &Param{Name: "w", Value: []float32{1, -2}, Grad: make([]float32, 2)}
	frozen := &Param{Name: "f", Value: []float32{5}, Grad: []float32{7}, Frozen: true}
	params := []*Param{p, frozen}
	rows := []struct{ a, c []float32 }{{[]float32{1, 2}, []float32{0, 1}}, {[]float32{3, 1}, []float32{2, -1}}}
	// Batches of 1 and 3 rows (the second batch is row 1 three times): mu = (g0 + 3*g1)/4.
	err = o.Snapshot(params, func(add func(int)) error {
		quadGrad(p, rows[0].a, rows[0].c)
		add(1)
		quadGrad(p, rows[1].a, rows[1].c)
		add(3)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	snapW := append([]float32(nil), p.Value...)
	var mu [2]float64
	for i := range mu {
		g0 := float64(rows[0].a[i]) * float64(snapW[i]-rows[0].c[i])
		g1 := float64(rows[1].a[i]) * float64(snapW[i]-rows[1].c[i])
		mu[i] = (g0 + 3*g1) / 4
	}
	if o.GradEvals() != 4 || !o.SnapshotDue(0) || o.SnapshotDue(1) || !o.SnapshotDue(2) {
		t.Fatalf("evals %d, due(0,1,2) = %v %v %v; want 4, true false true", o.GradEvals(), o.SnapshotDue(0), o.SnapshotDue(1), o.SnapshotDue(2))
	}
	// Move w, then correct the gradient of row 0 at w.
	p.Value[0], p.Value[1] = 0.5, 3
	quadGrad(p, rows[0].a, rows[0].c)
	gw := append([]float32(nil), p.Grad...)
	var seen []float32
	err = o.VarianceReduce(params, 1, func() error {
		seen = append([]float32(nil), p.Value...)
		quadGrad(p, rows[0].a, rows[0].c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen[0] != snapW[0] || seen[1] != snapW[1] {
		t.Fatalf("gradAt saw weights %v, want the snapshot %v", seen, snapW)
	}
	if p.Value[0] != 0.5 || p.Value[1] != 3 {
		t.Fatalf("weights after VarianceReduce %v, want w restored (0.5, 3)", p.Value)
	}
	for i := range p.Grad {
		gs := float64(rows[0].a[i]) * float64(snapW[i]-rows[0].c[i])
		want := float64(gw[i]) - gs + mu[i]
		if math.Abs(float64(p.Grad[i])-want) > 1e-6 {
			t.Fatalf("corrected grad[%d] = %v, want g(w)-g(w~)+mu = %v", i, p.Grad[i], want)
		}
	}
	if frozen.Value[0] != 5 || frozen.Grad[0] != 7 {
		t.Fatalf("frozen param touched: %v %v", frozen.Value, frozen.Grad)
	}
	if o.GradEvals() != 6 {
		t.Fatalf("evals %d after one step of 1 row, want 4 + 2", o.GradEvals())
	}
	// The step is the inner SGD's: w -= lr*g.
	before := append([]float32(nil), p.Value...)
	g := append([]float32(nil), p.Grad...)
	o.Step(params, 0.1)
	for i := range p.Value {
		if want := before[i] - float32(0.1)*g[i]; math.Abs(float64(p.Value[i]-want)) > 1e-6 {
			t.Fatalf("step: w[%d] = %v, want %v", i, p.Value[i], want)
		}
	}
	// An error of gradAt restores w and leaves Grad alone.
	boom := errors.New("boom")
	if err := o.VarianceReduce(params, 1, func() error { p.Grad[0] = 99; return boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if p.Value[0] != before[0]-float32(0.1)*g[0] {
		t.Fatalf("w not restored after an error: %v", p.Value)
	}
}

func TestSVRGStateRoundTrip(t *testing.T) {
	cfg := Config{Name: NameSVRG, Inner: "sgd", Momentum: 0.9, LR: 0.05}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o := a.(*SVRG)
	p := &Param{Name: "w", Value: []float32{1, 2, 3}, Grad: []float32{0.1, -0.2, 0.3}}
	if err := o.Snapshot([]*Param{p}, func(add func(int)) error { add(5); return nil }); err != nil {
		t.Fatal(err)
	}
	o.Step([]*Param{p}, 0.05)
	st, err := o.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(cfg)
	if err := b.UnmarshalState(st); err != nil {
		t.Fatal(err)
	}
	st2, _ := b.MarshalState()
	if !bytes.Equal(st, st2) {
		t.Fatal("state differs after a round trip")
	}
	ob := b.(*SVRG)
	if ob.GradEvals() != 5 || !ob.has || ob.snap["w"][2] != 3 || ob.mu["w"][1] != -0.2 {
		t.Fatalf("restored evals %d, snapshot %v, mu %v", ob.GradEvals(), ob.snap["w"], ob.mu["w"])
	}
	other, _ := New(Config{Name: NameSVRG, Inner: "adam"})
	if err := other.UnmarshalState(st); err == nil || !strings.Contains(err.Error(), "inner optimizer") {
		t.Fatalf("restoring an sgd-inner state into adam-inner: err %v", err)
	}
	sgd, _ := New(Config{Name: NameSGD})
	if err := sgd.UnmarshalState(st); err == nil {
		t.Fatal("plain sgd accepted an svrg state")
	}
}

func TestSVRGConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: NameSVRG, Inner: NameSVRG}, "cannot be svrg"},
		{Config{Name: NameSVRG, Inner: "lbfgs"}, "unknown optimizer"},
		{Config{Name: NameSGD, SnapshotEpochs: 2}, "svrg only"},
		{Config{Name: NameAdam, Inner: "sgd"}, "svrg only"},
		{Config{Name: NameSVRG, SnapshotEpochs: -1}, "SnapshotEpochs"},
		{Config{Name: NameSVRG, Inner: "adam", Nesterov: true}, "nesterov"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want it to mention %q", tc.cfg, err, tc.want)
		}
	}
	if lr := (Config{Name: NameSVRG, Inner: "adam"}).DefaultLR(); lr != 0.001 {
		t.Errorf("svrg(adam) default LR %v, want adam's 0.001", lr)
	}
}
