package report

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pipe-ml/pipe/pipeline"
)

// Files the training stages write into their stage directory.
const (
	historyFile   = "history.csv"       // per-epoch metrics: epoch, then one column per key
	rangeTestFile = "lr_range_test.csv" // the LR range test: step, lr, loss
	monitorFile   = "monitor.csv"       // training monitor samples (see readMonitor)
)

// MaxEpochPoints is the most points a per-epoch curve keeps (longer histories are
// downsampled, first and last epochs kept).
const MaxEpochPoints = 1000

// table is a numeric CSV file: its header and its columns (NaN where a cell is empty).
type table struct {
	header []string
	cols   map[string][]float64
	text   map[string][]string // the cells of the columns read as text (see readTable)
}

// readTable reads a CSV file whose columns are numbers except those named in textCols; ok is
// false when the file does not exist. A cell that is neither empty nor a number is an error
// naming its line and column.
func readTable(path string, textCols ...string) (t *table, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil {
		return nil, false, err
	}
	if len(records) == 0 {
		return nil, false, fmt.Errorf("empty file: no header")
	}
	t = &table{header: records[0], cols: map[string][]float64{}, text: map[string][]string{}}
	isText := map[string]bool{}
	for _, c := range textCols {
		isText[c] = true
	}
	for j, name := range t.header {
		if isText[name] {
			t.text[name] = make([]string, 0, len(records)-1)
		} else {
			t.cols[name] = make([]float64, 0, len(records)-1)
		}
		for i, rec := range records[1:] {
			cell := ""
			if j < len(rec) {
				cell = strings.TrimSpace(rec[j])
			}
			if isText[name] {
				t.text[name] = append(t.text[name], cell)
				continue
			}
			v := math.NaN()
			if cell != "" {
				if v, err = strconv.ParseFloat(cell, 64); err != nil {
					return nil, false, fmt.Errorf("line %d, column %q: %q is not a number", i+2, name, cell)
				}
			}
			t.cols[name] = append(t.cols[name], v)
		}
	}
	return t, true, nil
}

// rows is the table's number of data rows.
func (t *table) rows() int {
	for _, c := range t.cols {
		return len(c)
	}
	for _, c := range t.text {
		return len(c)
	}
	return 0
}

// historyKey splits a history column into its head prefix ("parity/" or ""), its split
// ("val" for val_*, "train" otherwise) and its base name: "val_accuracy" → ("", "val",
// "accuracy"), "train_reconstruction_loss" → ("", "train", "reconstruction_loss").
func historyKey(k string) (head, split, base string) {
	if i := strings.LastIndex(k, "/"); i >= 0 {
		head, k = k[:i+1], k[i+1:]
	}
	switch {
	case strings.HasPrefix(k, "val_"):
		return head, "val", k[4:]
	case strings.HasPrefix(k, "train_"):
		return head, "train", k[6:]
	}
	return head, "train", k
}

// isLoss reports whether a history base name is a loss to draw on the loss chart ("loss",
// "reconstruction_loss", "masked_loss"; not the logloss metric).
func isLoss(base string) bool { return base == "loss" || strings.HasSuffix(base, "_loss") }

// mainMetrics are the metrics drawn beside the loss, the first one a history has.
var mainMetrics = []string{"accuracy", "r2", "rmse", "mae", "auc", "f1_macro", "logloss"}

// historyCurves turns a history table into the loss curve, the main metric's curve and the
// learning rate's (log scale), each downsampled to MaxEpochPoints.
func historyCurves(t *table) []Curve {
	epochs := t.cols["epoch"]
	if len(epochs) == 0 {
		epochs = make([]float64, t.rows())
		for i := range epochs {
			epochs[i] = float64(i + 1)
		}
	}
	byBase := map[string][]string{}
	for _, k := range t.header {
		if k == "epoch" {
			continue
		}
		_, _, base := historyKey(k)
		byBase[base] = append(byBase[base], k)
	}
	curve := func(title, ylabel string, keys []string, logY bool) Curve {
		sort.SliceStable(keys, func(i, j int) bool { // train before val, heads in order
			hi, si, _ := historyKey(keys[i])
			hj, sj, _ := historyKey(keys[j])
			if hi != hj {
				return hi < hj
			}
			return si < sj
		})
		ys := make([][]float64, len(keys))
		for i, k := range keys {
			ys[i] = t.cols[k]
		}
		x, ys := Downsample(epochs, ys, MaxEpochPoints)
		c := Curve{Title: title, XLabel: "epoch", YLabel: ylabel, X: x, LogY: logY}
		for i, k := range keys {
			c.Series = append(c.Series, Series{Name: k, Values: ys[i]})
		}
		return c
	}
	var out []Curve
	var losses []string
	var lossBases []string
	for base := range byBase {
		if isLoss(base) {
			lossBases = append(lossBases, base)
		}
	}
	sort.Strings(lossBases)
	for _, base := range lossBases {
		losses = append(losses, byBase[base]...)
	}
	if len(losses) > 0 {
		out = append(out, curve("loss", "loss", losses, false))
	}
	for _, m := range mainMetrics {
		if keys := byBase[m]; len(keys) > 0 {
			out = append(out, curve(m, m, keys, false))
			break
		}
	}
	if keys := byBase["lr"]; len(keys) > 0 {
		out = append(out, curve("learning rate", "learning rate", keys, true))
	}
	// SVRG's history counts gradient evaluations (a step costs two, a snapshot a pass over
	// the rows): the loss against them is how variance-reduced methods are compared.
	if evals := t.cols["grad_evals"]; len(evals) > 0 && len(losses) > 0 {
		ys := make([][]float64, len(losses))
		for i, k := range losses {
			ys[i] = t.cols[k]
		}
		x, ys := Downsample(evals, ys, MaxEpochPoints)
		c := Curve{Title: "loss against gradient evaluations", XLabel: "gradient evaluations (rows)", YLabel: "loss", X: x, LogY: true}
		for i, k := range losses {
			c.Series = append(c.Series, Series{Name: k, Values: ys[i]})
		}
		out = append(out, c)
	}
	return out
}

// training reads a stage's history.csv into its curves, with the early-stopping point and
// the restored epoch from its info (epochs, best_epoch, stopped_early, restored_epoch,
// partial) as marks on the loss and metric curves (the restored epoch only when training
// stopped early or it is not the last one); nil without a history.
func (b *builder) training(dir string, info map[string]any) (*Training, error) {
	t, ok, err := readTable(filepath.Join(dir, historyFile))
	if err != nil || !ok {
		return nil, err
	}
	tr := &Training{Curves: historyCurves(t), Epochs: t.rows()}
	if n, ok := jsonInt(info["epochs"]); ok && n > 0 {
		tr.Epochs = n
	}
	if best, ok := jsonInt(info["best_epoch"]); ok {
		tr.BestEpoch = best
	}
	stopped, _ := info["stopped_early"].(bool)
	if stopped {
		tr.StoppedAt = tr.Epochs
	}
	tr.Partial, _ = info["partial"].(bool)
	var marks []Mark
	if tr.StoppedAt > 0 {
		marks = append(marks, Mark{X: float64(tr.StoppedAt), Label: "stopped early"})
	}
	restored, ok := jsonInt(info["restored_epoch"])
	if !ok && stopped { // a run from before restored_epoch: early stopping restored the best
		restored, ok = tr.BestEpoch, tr.BestEpoch > 0
	}
	if ok && restored > 0 && (stopped || restored != tr.Epochs) { // the last epoch's weights need no mark
		marks = append(marks, Mark{X: float64(restored), Label: "restored"})
	}
	for i := range tr.Curves {
		if tr.Curves[i].Title != "learning rate" {
			tr.Curves[i].Marks = marks
		}
	}
	return tr, nil
}

// rangeTest reads the LR range test's sweep (lr = "auto"), downsampled to MaxCurvePoints, with
// the best and the suggested learning rates of info.lr_range_test as marks; nil without one.
func rangeTest(path string, info map[string]any) (*Curve, error) {
	t, ok, err := readTable(path)
	if err != nil || !ok {
		return nil, err
	}
	lrs, losses := t.cols["lr"], t.cols["loss"]
	if len(lrs) == 0 || len(losses) != len(lrs) {
		return nil, fmt.Errorf("no lr and loss columns")
	}
	var xs, ls []float64
	for i, lr := range lrs {
		if finite(lr) && lr > 0 {
			xs, ls = append(xs, lr), append(ls, losses[i])
		}
	}
	x, ys := Downsample(xs, [][]float64{ls}, MaxCurvePoints)
	c := &Curve{Title: "LR range test", XLabel: "learning rate", YLabel: "smoothed loss", X: x, Series: []Series{{Name: "loss", Values: ys[0]}}, LogX: true}
	if rt, ok := info["lr_range_test"].(map[string]any); ok {
		if v, ok := jsonNumber(rt["best_lr"]); ok && v > 0 {
			c.Marks = append(c.Marks, Mark{X: v, Label: "lowest loss"})
		}
		if v, ok := jsonNumber(rt["suggested_lr"]); ok && v > 0 {
			c.Marks = append(c.Marks, Mark{X: v, Label: "used"})
		}
	}
	return c, nil
}

// ensembleSection reads an ensemble stage's members (info.members), combiners, diversity and
// out-of-bag scores, and the members' histories as curves of every member's train and val
// loss; nil for a stage without info.members.
func ensembleSection(dir string, s *pipeline.StageManifest) (*Ensemble, []Curve, error) {
	list, ok := s.Info["members"].([]any)
	if !ok {
		return nil, nil, nil
	}
	e := &Ensemble{Metric: jsonString(s.Info["val_metric"])}
	histories := map[int]*table{}
	var firstErr error
	for _, x := range list {
		mi, _ := x.(map[string]any)
		if mi == nil {
			continue
		}
		idx, _ := jsonInt(mi["member"])
		m := Member{Index: idx, Name: jsonString(mi["name"])}
		if m.Name == "" {
			m.Name = fmt.Sprintf("member %d", idx)
		}
		m.ValMetric = math.NaN()
		if v, ok := jsonNumber(mi["val_metric"]); ok {
			m.ValMetric = v
		} else if e.Metric != "" {
			if v, ok := s.Metrics[fmt.Sprintf("member_%02d/", idx)+valMetricKey(e.Metric)]; ok {
				m.ValMetric = v
			}
		}
		m.EpochsRun, _ = jsonInt(mi["epochs_run"])
		m.BestEpoch, _ = jsonInt(mi["best_epoch"])
		m.StoppedEarly, _ = mi["stopped_early"].(bool)
		m.Dropped, _ = mi["dropped"].(bool)
		m.Restored, _ = mi["restored"].(bool)
		e.Members = append(e.Members, m)
		if h := jsonString(mi["history"]); h != "" {
			t, ok, err := readTable(filepath.Join(dir, filepath.FromSlash(h)))
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", h, err)
			}
			if ok {
				histories[idx] = t
			}
		}
	}
	if e.Metric == "" { // an older run: the metric is the one its mean combiner was scored by
		e.Metric = combinerMetric(s.Metrics)
		for i := range e.Members {
			if v, ok := s.Metrics[fmt.Sprintf("member_%02d/", e.Members[i].Index)+valMetricKey(e.Metric)]; ok && e.Metric != "" && !e.Members[i].Dropped {
				e.Members[i].ValMetric = v
			}
		}
	}
	e.Combiners = combinerScores(s, e.Metric)
	e.Diversity = diversity(s)
	for k, v := range s.Metrics {
		if _, _, base := historyKey(k); strings.HasPrefix(base, "oob_") || strings.HasPrefix(k, "oob_") {
			if e.OOB == nil {
				e.OOB = map[string]float64{}
			}
			e.OOB[k] = v
		}
	}
	e.OOB = finiteMap(e.OOB)
	return e, memberCurves(e.Members, histories), firstErr
}

// valMetricKey is the manifest key of a member's val metric: "accuracy" → "val_accuracy",
// "parity/accuracy" → "parity/val_accuracy".
func valMetricKey(k string) string {
	if i := strings.LastIndex(k, "/"); i >= 0 {
		return k[:i+1] + "val_" + k[i+1:]
	}
	return "val_" + k
}

// combinerMetric is the val metric of the mean combiner's score, "mean/val_<metric>", of a
// single-head ensemble ("" when there is none).
func combinerMetric(metrics map[string]float64) string {
	var found []string
	for k := range metrics {
		if rest, ok := strings.CutPrefix(k, "mean/val_"); ok && !strings.Contains(rest, "/") {
			found = append(found, rest)
		}
	}
	if len(found) != 1 {
		return ""
	}
	return found[0]
}

// combinerScores is each combiner's val score on the first head (info.combiners; for older
// runs the metrics <combiner>/val_<metric>).
func combinerScores(s *pipeline.StageManifest, metric string) map[string]float64 {
	out := map[string]float64{}
	if list, ok := s.Info["combiners"].([]any); ok {
		head := ""
		for _, x := range list {
			c, _ := x.(map[string]any)
			if c == nil {
				continue
			}
			h := jsonString(c["head"])
			if head == "" {
				head = h
			}
			if h != head {
				continue
			}
			if v, ok := jsonNumber(c["score"]); ok {
				out[jsonString(c["combiner"])] = v
			}
		}
		return finiteMap(out)
	}
	if metric == "" || strings.Contains(metric, "/") {
		return nil
	}
	for k, v := range s.Metrics {
		if c, rest, ok := strings.Cut(k, "/"); ok && rest == "val_"+metric && !strings.HasPrefix(c, "member_") {
			out[c] = v
		}
	}
	return finiteMap(out)
}

// diversity is the members' mean pairwise disagreement per head (info.diversity, or the
// metric val_diversity of older runs).
func diversity(s *pipeline.StageManifest) []float64 {
	var out []float64
	if list, ok := s.Info["diversity"].([]any); ok {
		for _, x := range list {
			d, _ := x.(map[string]any)
			if v, ok := jsonNumber(d["value"]); ok && finite(v) {
				out = append(out, v)
			}
		}
		return out
	}
	if v, ok := s.Metrics["val_diversity"]; ok && finite(v) {
		out = append(out, v)
	}
	return out
}

// memberCurves draws every member's train and val loss per epoch, one series per member (a
// member that ran fewer epochs ends early: null).
func memberCurves(members []Member, histories map[int]*table) []Curve {
	if len(histories) == 0 {
		return nil
	}
	longest := 0
	for _, t := range histories {
		longest = max(longest, t.rows())
	}
	x := make([]float64, longest)
	for i := range x {
		x[i] = float64(i + 1)
	}
	var out []Curve
	for _, key := range []string{"val_loss", "loss"} {
		title := "members: val loss"
		if key == "loss" {
			title = "members: train loss"
		}
		c := Curve{Title: title, XLabel: "epoch", YLabel: "loss", X: x}
		for _, m := range members {
			t := histories[m.Index]
			if t == nil || t.cols[key] == nil {
				continue
			}
			v := make([]float64, longest)
			for i := range v {
				v[i] = math.NaN()
				if i < len(t.cols[key]) {
					v[i] = t.cols[key][i]
				}
			}
			c.Series = append(c.Series, Series{Name: m.Name, Values: v})
		}
		if len(c.Series) > 0 {
			xs, ys := Downsample(c.X, seriesValues(c.Series), MaxEpochPoints)
			c.X = xs
			for i := range c.Series {
				c.Series[i].Values = ys[i]
			}
			out = append(out, c)
		}
	}
	return out
}

func seriesValues(s []Series) [][]float64 {
	out := make([][]float64, len(s))
	for i := range s {
		out[i] = s[i].Values
	}
	return out
}

func maxMemberEpochs(e *Ensemble) int {
	n := 0
	for _, m := range e.Members {
		n = max(n, m.EpochsRun)
	}
	return n
}

// pseudoRounds reads a pseudo_label stage's info.rounds, and a curve over the rounds (round 0:
// the starting model) of the val accuracy, the pseudo-labels' accuracy where known and their
// mean confidence; nil for a stage without rounds.
func pseudoRounds(s *pipeline.StageManifest) ([]Round, *Training) {
	list, ok := s.Info["rounds"].([]any)
	if !ok {
		return nil, nil
	}
	rounds := []Round{}
	x := []float64{0}
	val, pseudo, conf := []float64{math.NaN()}, []float64{math.NaN()}, []float64{math.NaN()}
	if v, ok := s.Metrics["initial/val_accuracy"]; ok {
		val[0] = v
	}
	epochs := 0
	for _, e := range list {
		ri, _ := e.(map[string]any)
		if ri == nil {
			continue
		}
		var r Round
		r.Round, _ = jsonInt(ri["round"])
		r.Added, _ = jsonInt(ri["added"])
		r.Epochs, _ = jsonInt(ri["epochs"])
		r.ValAccuracy, _ = jsonNumber(ri["val_accuracy"])
		pa, okPA := jsonNumber(ri["pseudo_accuracy"])
		mc, okMC := jsonNumber(ri["mean_confidence"])
		if okPA {
			r.PseudoAccuracy = pa
		}
		if okMC {
			r.MeanConfidence = mc
		}
		rounds = append(rounds, r)
		epochs += r.Epochs
		x = append(x, float64(r.Round))
		val = append(val, r.ValAccuracy)
		pseudo = append(pseudo, orNaN(pa, okPA))
		conf = append(conf, orNaN(mc, okMC))
	}
	c := Curve{Title: "pseudo-label rounds", XLabel: "round", YLabel: "accuracy", X: x, Series: []Series{{Name: "val_accuracy", Values: val}}}
	if hasFinite(pseudo) {
		c.Series = append(c.Series, Series{Name: "pseudo_label_accuracy", Values: pseudo})
	}
	if hasFinite(conf) {
		c.Series = append(c.Series, Series{Name: "mean_confidence", Values: conf})
	}
	if best, ok := jsonInt(s.Info["best_round"]); ok {
		c.Marks = []Mark{{X: float64(best), Label: "kept"}}
	}
	return rounds, &Training{Curves: []Curve{c}, Epochs: epochs}
}

func hasFinite(v []float64) bool {
	for _, x := range v {
		if finite(x) {
			return true
		}
	}
	return false
}
