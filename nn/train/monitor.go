package train

import (
	"math"

	"github.com/pipe-ml/pipe/nn"
)

// Histogram counts values in Bins equal-width bins over [Min, Max].
type Histogram struct {
	Min, Max float64
	Counts   []int
}

// LayerStat summarises one trunk layer's output on a sampled step.
type LayerStat struct {
	Layer     string
	Kind      string
	Mean, Std float64
	Histogram Histogram
	// DeadFraction is the share of output units that are <= 0 on every row of the batch (dead
	// ReLUs when the layer ends in a ReLU).
	DeadFraction float64
	// GradNorm is the L2 norm of dLoss/dOutput.
	GradNorm float64
}

// ParamStat summarises one param on a sampled step.
type ParamStat struct {
	Param    string
	Norm     float64 // ‖w‖ after the step
	GradNorm float64 // ‖g‖ of the step (after clipping)
	// GradToParam is ‖g‖/‖w‖; UpdateToParam is ‖w_after − w_before‖/‖w_before‖ (the
	// "update/param ratio", healthy around 1e-3).
	GradToParam   float64
	UpdateToParam float64
}

// MonitorSample is the monitoring data of one sampled step.
type MonitorSample struct {
	Epoch, Step int
	// LR is the learning rate of the sampled step (after the schedule).
	LR     float64
	Layers []LayerStat
	Params []ParamStat
}

// Monitor returns the hooks that sample every every-th step (steps every−1, 2·every−1, ...,
// default 100) and call fn with layer and param statistics. Histograms have bins bins
// (default 20). The step before a sampled one records gradients and a copy of the weights,
// so monitoring costs two weight copies and one activation-gradient copy per sample.
func Monitor(name string, every, bins int, fn func(MonitorSample) error) []Hook {
	if every <= 0 {
		every = 100
	}
	if bins <= 0 {
		bins = 20
	}
	var before [][]float32
	arm := OnStep(name+"/arm", math.MaxInt-1, func(s *StepInfo) error {
		// Runs after the sampling hook of the same step: prepare the next step if it is sampled.
		if (s.Step+2)%every == 0 {
			s.Model.SetRecordGradients(true)
			before = before[:0]
			for _, p := range s.Model.Params() {
				before = append(before, append([]float32(nil), p.Value...))
			}
		}
		return nil
	})
	sample := OnStep(name, math.MaxInt-2, func(s *StepInfo) error {
		if (s.Step+1)%every != 0 {
			return nil
		}
		defer s.Model.SetRecordGradients(false)
		ms := MonitorSample{Epoch: s.Epoch, Step: s.Step, LR: s.LR}
		for _, lt := range s.Model.LayerTensors(s.Rows) {
			ms.Layers = append(ms.Layers, layerStat(lt, bins))
		}
		for i, p := range s.Model.Params() {
			ps := ParamStat{Param: p.Name, Norm: norm(p.Value), GradNorm: norm(p.Grad)}
			if ps.Norm > 0 {
				ps.GradToParam = ps.GradNorm / ps.Norm
			}
			if i < len(before) && len(before[i]) == len(p.Value) {
				var d, w float64
				for j, v := range p.Value {
					x := float64(v) - float64(before[i][j])
					d += x * x
					w += float64(before[i][j]) * float64(before[i][j])
				}
				if w > 0 {
					ps.UpdateToParam = math.Sqrt(d / w)
				}
			}
			ms.Params = append(ms.Params, ps)
		}
		return fn(ms)
	})
	return []Hook{arm, sample}
}

func norm(s []float32) float64 {
	var ss float64
	for _, v := range s {
		ss += float64(v) * float64(v)
	}
	return math.Sqrt(ss)
}

func layerStat(lt nn.LayerTensor, bins int) LayerStat {
	st := LayerStat{Layer: lt.Layer, Kind: lt.Kind, Histogram: Histogram{Counts: make([]int, bins)}}
	out := lt.Output
	if len(out) == 0 {
		return st
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	var s, ss float64
	for _, v := range out {
		f := float64(v)
		s += f
		ss += f * f
		lo, hi = math.Min(lo, f), math.Max(hi, f)
	}
	n := float64(len(out))
	st.Mean = s / n
	st.Std = math.Sqrt(math.Max(ss/n-st.Mean*st.Mean, 0))
	st.Histogram.Min, st.Histogram.Max = lo, hi
	width := (hi - lo) / float64(bins)
	for _, v := range out {
		b := bins - 1
		if width > 0 {
			b = min(int((float64(v)-lo)/width), bins-1)
		}
		st.Histogram.Counts[b]++
	}
	dead := 0
	for j := 0; j < lt.Cols; j++ {
		alive := false
		for r := 0; r < lt.Rows; r++ {
			if out[r*lt.Cols+j] > 0 {
				alive = true
				break
			}
		}
		if !alive {
			dead++
		}
	}
	st.DeadFraction = float64(dead) / float64(lt.Cols)
	if lt.Grad != nil {
		st.GradNorm = norm(lt.Grad)
	}
	return st
}
