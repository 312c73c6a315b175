package optim

import (
	"math"
	"strings"
	"testing"
)

func mustSchedule(t *testing.T, cfg ScheduleConfig) Schedule {
	t.Helper()
	s, err := NewSchedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func approx(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

// cosineAt is the closed form (1+cos(pi*tcur/ti))/2 between lo and hi.
func cosineAt(lo, hi, tcur, ti float64) float64 {
	return lo + (hi-lo)*(1+math.Cos(math.Pi*tcur/ti))/2
}

func TestSchedulesClosedForm(t *testing.T) {
	const base = 0.1
	type point struct {
		p    Progress
		want float64
	}
	at := func(step, spe int) Progress {
		return Progress{Step: step, Epoch: step / spe, StepsPerEpoch: spe, Epochs: 14}
	}
	tests := []struct {
		name   string
		cfg    ScheduleConfig
		points []point
	}{
		{"constant", ScheduleConfig{}, []point{{at(0, 10), base}, {at(1000, 10), base}}},
		{"step defaults", ScheduleConfig{Name: "step"}, []point{
			{Progress{Epoch: 29}, base}, {Progress{Epoch: 30}, base * 0.1}, {Progress{Epoch: 65}, base * 0.1 * 0.1},
		}},
		{"step", ScheduleConfig{Name: "step", StepEpochs: 3, Gamma: 0.5}, []point{
			{Progress{Epoch: 0}, base}, {Progress{Epoch: 2}, base}, {Progress{Epoch: 3}, base / 2},
			{Progress{Epoch: 5}, base / 2}, {Progress{Epoch: 6}, base / 4}, {Progress{Epoch: 9}, base / 8},
		}},
		{"step floor", ScheduleConfig{Name: "step", StepEpochs: 1, Gamma: 0.5, MinLR: 0.03}, []point{
			{Progress{Epoch: 1}, 0.05}, {Progress{Epoch: 2}, 0.03}, {Progress{Epoch: 9}, 0.03},
		}},
		// base * 0.9^(step/10): smooth within an epoch.
		{"exponential", ScheduleConfig{Name: "exponential", Gamma: 0.9}, []point{
			{at(0, 10), base}, {at(10, 10), base * 0.9}, {at(15, 10), base * math.Pow(0.9, 1.5)},
			{Progress{Epoch: 3}, base * 0.9 * 0.9 * 0.9}, // StepsPerEpoch unknown: per epoch
		}},
		{"exponential default", ScheduleConfig{Name: "exponential"}, []point{{at(20, 10), base * 0.95 * 0.95}}},
		// Epochs 14, no restarts: half-way at epoch 7, MinLR from epoch 14 on.
		{"cosine", ScheduleConfig{Name: "cosine", MinLR: 0.01}, []point{
			{at(0, 4), base}, {at(28, 4), (base + 0.01) / 2}, {at(14, 4), cosineAt(0.01, base, 3.5, 14)},
			{at(56, 4), 0.01}, {at(80, 4), 0.01},
		}},
		{"cosine T0 without restarts", ScheduleConfig{Name: "cosine", T0: 4}, []point{
			{at(2, 1), base / 2}, {at(4, 1), 0}, {at(9, 1), 0},
		}},
		// SGDR, T0 2, TMult 2: periods [0,2), [2,6), [6,14).
		{"cosine warm restarts", ScheduleConfig{Name: "cosine", T0: 2, TMult: 2, MinLR: 0.02}, []point{
			{at(0, 100), base},
			{at(100, 100), (base + 0.02) / 2},             // epoch 1: middle of period 0
			{at(199, 100), cosineAt(0.02, base, 1.99, 2)}, // just before the restart
			{at(200, 100), base},                          // restart at epoch 2
			{at(350, 100), cosineAt(0.02, base, 1.5, 4)},  // epoch 3.5 of period [2,6)
			{at(400, 100), (base + 0.02) / 2},             // middle of period 1
			{at(599, 100), cosineAt(0.02, base, 3.99, 4)}, // just before the restart
			{at(600, 100), base},                          // restart at epoch 6
			{at(1000, 100), (base + 0.02) / 2},            // middle of [6,14)
			{at(1300, 100), cosineAt(0.02, base, 7, 8)},   // epoch 13
			{at(1400, 100), base},                         // next restart at 14, period 16
			{at(1400+1600, 100), base},                    // and at 30
		}},
		// TMult 1: a fixed period of 3 epochs.
		{"cosine fixed restarts", ScheduleConfig{Name: "cosine", T0: 3, TMult: 1}, []point{
			{at(3, 2), cosineAt(0, base, 1.5, 3)}, {at(6, 2), base}, {at(9, 2), cosineAt(0, base, 1.5, 3)}, {at(12, 2), base},
		}},
		// Warmup 10 steps composed with the cosine: (s+1)/10 of the scheduled value.
		{"warmup cosine", ScheduleConfig{Name: "cosine", WarmupSteps: 10}, []point{
			{at(0, 4), base * cosineAt(0, 1, 0, 14) / 10},
			{at(4, 4), base * cosineAt(0, 1, 1, 14) * 5 / 10},
			{at(9, 4), cosineAt(0, base, 2.25, 14)},
			{at(10, 4), cosineAt(0, base, 2.5, 14)},
		}},
		{"warmup step", ScheduleConfig{Name: "step", StepEpochs: 1, Gamma: 0.5, WarmupSteps: 4}, []point{
			{Progress{Step: 0}, base / 4}, {Progress{Step: 2, Epoch: 1, StepsPerEpoch: 2}, base / 2 * 3 / 4},
			{Progress{Step: 4, Epoch: 2, StepsPerEpoch: 2}, base / 4},
		}},
		{"cosine without a horizon", ScheduleConfig{Name: "cosine"}, []point{{Progress{Step: 50, Epoch: 5}, base}}},
		// 14 planned epochs, constant for 10, then linear to 0 over the last 4 (per step).
		{"linear", ScheduleConfig{Name: "linear", DecayStart: 10}, []point{
			{at(0, 10), base}, {at(100, 10), base}, {at(110, 10), base * 3 / 4},
			{at(125, 10), base * 1.5 / 4}, {at(140, 10), 0}, {at(200, 10), 0},
		}},
		{"linear to MinLR", ScheduleConfig{Name: "linear", DecayStart: 10, MinLR: 0.02}, []point{
			{at(99, 10), base}, {at(120, 10), 0.02 + (base-0.02)/2}, {at(150, 10), 0.02},
		}},
		{"linear from the start", ScheduleConfig{Name: "linear"}, []point{
			{at(0, 10), base}, {at(70, 10), base / 2}, {at(139, 10), base / 140},
		}},
		{"linear per epoch", ScheduleConfig{Name: "linear", DecayStart: 10}, []point{
			{Progress{Step: 5, Epoch: 12, Epochs: 14}, base / 2},
		}},
		{"linear without a horizon", ScheduleConfig{Name: "linear", DecayStart: 10}, []point{
			{Progress{Step: 500, Epoch: 50}, base},
		}},
		{"linear decay start past the horizon", ScheduleConfig{Name: "linear", DecayStart: 20}, []point{
			{at(139, 10), base},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSchedule(t, tc.cfg)
			for _, pt := range tc.points {
				if got := s.LR(base, pt.p); !approx(got, pt.want) {
					t.Errorf("%+v: lr %.12g, want %.12g", pt.p, got, pt.want)
				}
			}
		})
	}
}

func TestPlateau(t *testing.T) {
	// Base 1, Patience 2, Factor 0.5, Cooldown 1, MinLR 0.3, MinDelta 0.01. Improved means
	// metric < best - 0.01. wantLR is the rate after that epoch's EpochEnd.
	steps := []struct {
		metric float64
		wantLR float64
		why    string
	}{
		{1.0, 1, "first epoch: best 1.0"},
		{0.995, 1, "not below 0.99: bad 1"},
		{0.98, 1, "below 0.99: best 0.98, bad 0"},
		{0.975, 1, "not below 0.97: bad 1"},
		{0.99, 0.5, "bad 2 = Patience: reduce to 0.5, cooldown 1"},
		{1.0, 0.5, "cooldown: not counted"},
		{1.0, 0.5, "bad 1"},
		{math.NaN(), 0.3, "NaN is no improvement: bad 2: 0.25 floored at MinLR 0.3"},
		{0.5, 0.3, "cooldown, but the improvement is recorded: best 0.5"},
		{0.495, 0.3, "bad 1"},
		{0.495, 0.3, "bad 2: reduce again, still at the floor"},
	}
	s := mustSchedule(t, ScheduleConfig{Name: "plateau", Patience: 2, Factor: 0.5, Cooldown: 1, MinLR: 0.3, MinDelta: 0.01})
	var saved []byte
	for e, st := range steps {
		s.EpochEnd(e, st.metric)
		if got := s.LR(1, Progress{Epoch: e + 1}); !approx(got, st.wantLR) {
			t.Fatalf("epoch %d (%s): lr %v, want %v", e, st.why, got, st.wantLR)
		}
		if e == 5 {
			var err error
			if saved, err = s.MarshalState(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Restoring the state after epoch 5 replays epochs 6.. identically.
	r := mustSchedule(t, ScheduleConfig{Name: "plateau", Patience: 2, Factor: 0.5, Cooldown: 1, MinLR: 0.3, MinDelta: 0.01})
	if err := r.UnmarshalState(saved); err != nil {
		t.Fatal(err)
	}
	for e := 6; e < len(steps); e++ {
		r.EpochEnd(e, steps[e].metric)
		if got := r.LR(1, Progress{Epoch: e + 1}); !approx(got, steps[e].wantLR) {
			t.Fatalf("restored, epoch %d: lr %v, want %v", e, got, steps[e].wantLR)
		}
	}
	a, _ := s.MarshalState()
	b, _ := r.MarshalState()
	if string(a) != string(b) {
		t.Error("restored schedule's state differs from the uninterrupted one")
	}

	// Defaults: Patience 10, Factor 0.1. Ten non-improving epochs after the first reduce.
	d := mustSchedule(t, ScheduleConfig{Name: "plateau"})
	d.EpochEnd(0, 1)
	for e := 1; e <= 10; e++ {
		if got := d.LR(1, Progress{}); got != 1 {
			t.Fatalf("reduced after %d bad epochs", e-1)
		}
		d.EpochEnd(e, 1)
	}
	if got := d.LR(1, Progress{}); !approx(got, 0.1) {
		t.Fatalf("after 10 bad epochs lr %v, want 0.1", got)
	}
}

func TestScheduleConfigErrors(t *testing.T) {
	tests := []struct {
		cfg     ScheduleConfig
		wantErr string
	}{
		{ScheduleConfig{Name: "sawtooth"}, "valid: constant, step, exponential, cosine, plateau, linear"},
		{ScheduleConfig{Name: "linear", DecayStart: -1}, "DecayStart"},
		{ScheduleConfig{Name: "plateau", Factor: 1.5}, "factor"},
		{ScheduleConfig{Name: "step", Gamma: -1}, "Gamma"},
		{ScheduleConfig{Name: "cosine", T0: -1}, "T0"},
		{ScheduleConfig{WarmupSteps: -5}, "WarmupSteps"},
	}
	for _, tc := range tests {
		t.Run(tc.wantErr, func(t *testing.T) {
			_, err := NewSchedule(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	cos := mustSchedule(t, ScheduleConfig{Name: "cosine"})
	plat := mustSchedule(t, ScheduleConfig{Name: "plateau"})
	b, _ := cos.MarshalState()
	if err := plat.UnmarshalState(b); err == nil || !strings.Contains(err.Error(), "cosine") {
		t.Errorf("restoring a cosine state into plateau: %v", err)
	}
}

func TestSchedulesIgnoreEpochEndAndRoundTrip(t *testing.T) {
	for _, name := range []string{"constant", "step", "exponential", "cosine", "linear"} {
		t.Run(name, func(t *testing.T) {
			s := mustSchedule(t, ScheduleConfig{Name: name, StepEpochs: 2})
			p := Progress{Step: 35, Epoch: 3, StepsPerEpoch: 10, Epochs: 8}
			before := s.LR(0.1, p)
			for e := range 30 {
				s.EpochEnd(e, float64(e)) // ever worse: would trigger a plateau
			}
			if after := s.LR(0.1, p); after != before {
				t.Errorf("EpochEnd changed the rate from %v to %v", before, after)
			}
			b, err := s.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			r := mustSchedule(t, ScheduleConfig{Name: name, StepEpochs: 2})
			if err := r.UnmarshalState(b); err != nil {
				t.Fatal(err)
			}
			if got := r.LR(0.1, p); got != before {
				t.Errorf("restored schedule gives %v, want %v", got, before)
			}
		})
	}
}
