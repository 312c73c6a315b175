package stages

import (
	"encoding/csv"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/pipe-ml/pipe/nn/train"
	"github.com/pipe-ml/pipe/pipeline"
)

// monitorLog keeps the monitoring samples of a training run and warns once per problem.
type monitorLog struct {
	sc       *pipeline.StageContext
	rows     [][]string
	warned   map[string]bool
	warnings []string
	peakLR   float64 // the highest learning rate sampled so far
}

// updateRatioOff says whether a parameter's update/param ratio is far enough from the healthy
// 1e-3 to warn about: above 1e-1, or positive and below 1e-6 while the learning rate is at
// least a tenth of the highest sampled so far. A schedule that decays the rate towards 0 (a
// linear decay's last epochs) makes the updates tiny on purpose: no warning then.
func updateRatioOff(ratio, lr, peakLR float64) bool {
	return ratio > 1e-1 || (ratio > 0 && ratio < 1e-6 && lr >= 0.1*peakLR)
}

func newMonitorLog(sc *pipeline.StageContext) *monitorLog {
	return &monitorLog{sc: sc, warned: map[string]bool{}}
}

func (l *monitorLog) warn(key, format string, args ...any) {
	if l.warned[key] {
		return
	}
	l.warned[key] = true
	msg := fmt.Sprintf(format, args...)
	l.sc.Log.Warn().Msg(msg) // once: a note would log it a second time
	l.warnings = append(l.warnings, msg)
	l.sc.SetInfo("monitor_warnings", slices.Clone(l.warnings))
}

func f(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// monitorColumns are monitor.csv's columns. One row per sampled step and layer (kind: the
// layer's kind; act_*, dead_fraction, grad_norm = ‖dLoss/dOutput‖ and the activation
// histogram: hist_min and hist_max bound its equal-width bins, hist_counts holds each bin's
// count, space-separated) and per sampled step and param (kind "param"; grad_norm, param_norm,
// grad_to_param, update_to_param). step is the global optimizer step, 1-based; a field that
// does not apply is empty.
var monitorColumns = []string{"epoch", "step", "name", "kind", "act_mean", "act_std", "dead_fraction", "grad_norm", "param_norm", "grad_to_param", "update_to_param",
	"hist_min", "hist_max", "hist_counts"}

// histogramCounts formats a histogram's counts for monitor.csv's hist_counts.
func histogramCounts(counts []int) string {
	b := make([]byte, 0, 4*len(counts))
	for i, c := range counts {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendInt(b, int64(c), 10)
	}
	return string(b)
}

// record is the train.Monitor callback.
func (l *monitorLog) record(s train.MonitorSample) error {
	for _, ls := range s.Layers {
		hmin, hmax, counts := "", "", ""
		if len(ls.Histogram.Counts) > 0 {
			hmin, hmax, counts = f(ls.Histogram.Min), f(ls.Histogram.Max), histogramCounts(ls.Histogram.Counts)
		}
		l.rows = append(l.rows, []string{strconv.Itoa(s.Epoch + 1), strconv.Itoa(s.Step + 1), ls.Layer, ls.Kind,
			f(ls.Mean), f(ls.Std), f(ls.DeadFraction), f(ls.GradNorm), "", "", "", hmin, hmax, counts})
		if ls.DeadFraction > 0.5 {
			l.warn("dead/"+ls.Layer, "layer %s: %.0f%% of its units are dead (<= 0 on every row of a batch) at epoch %d; try leaky_relu or gelu, a lower learning rate, or He init", ls.Layer, 100*ls.DeadFraction, s.Epoch+1)
		}
	}
	l.peakLR = max(l.peakLR, s.LR)
	for _, ps := range s.Params {
		l.rows = append(l.rows, []string{strconv.Itoa(s.Epoch + 1), strconv.Itoa(s.Step + 1), ps.Param, "param",
			"", "", "", f(ps.GradNorm), f(ps.Norm), f(ps.GradToParam), f(ps.UpdateToParam), "", "", ""})
		if ps.Norm > 0 && updateRatioOff(ps.UpdateToParam, s.LR, l.peakLR) {
			l.warn("update/"+ps.Param, "%s: update/param ratio %.1e at epoch %d (healthy: about 1e-3); the learning rate may be too high or too low", ps.Param, ps.UpdateToParam, s.Epoch+1)
		}
	}
	return nil
}

func (l *monitorLog) write(path string) error {
	if len(l.rows) == 0 {
		return nil
	}
	return pipeline.WriteAtomic(path, func(file *os.File) error {
		w := csv.NewWriter(file)
		w.Write(monitorColumns)
		for _, r := range l.rows {
			// Rows of a checkpoint written before the histogram columns: padded.
			for len(r) < len(monitorColumns) {
				r = append(r, "")
			}
			w.Write(r)
		}
		w.Flush()
		return w.Error()
	})
}
