package report

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// writeRun writes a finished run's manifest, pipeline.toml and stage files into a new
// directory and returns it.
func writeRun(t *testing.T, m *pipeline.Manifest, toml string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if m.Status == "" {
		m.Status = pipeline.StatusSucceeded
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("manifest.json", string(b))
	if toml != "" {
		write("pipeline.toml", toml)
	}
	for name, content := range files {
		write(name, content)
	}
	return dir
}

func stageManifest(kind string, outputs ...string) *pipeline.StageManifest {
	s := &pipeline.StageManifest{Kind: kind, Status: pipeline.StatusSucceeded, Outputs: map[string]pipeline.OutputInfo{}}
	for _, o := range outputs {
		s.Outputs[o] = pipeline.OutputInfo{Kind: "table"}
	}
	return s
}

// TestGraphFromTheConfig: edges come from every top-level string or string array of a stage
// table that names another stage or one of its ports, whatever the kinds (no registry), a
// bare stage name getting the port of a stage with one output; a nested table, the stage
// itself, a port the stage does not have and a plain value are not edges; layers are the
// longest path from a source.
func TestGraphFromTheConfig(t *testing.T) {
	m := &pipeline.Manifest{StageOrder: []string{"a", "e", "b", "c", "d"}, Stages: map[string]*pipeline.StageManifest{
		"a": stageManifest("src", "out"), "e": stageManifest("src", "out"), "b": stageManifest("t", "out"),
		"c": stageManifest("t", "out", "model"), "d": stageManifest("sink"),
	}}
	toml := `
[stages.a]
kind = "src"
path = "x.csv"
[stages.e]
kind = "src"
[stages.b]
kind = "t"
input = "a"
self = "b"
opts = { input = "e" }
[stages.c]
kind = "t"
inputs = ["a.out", "b.out"]
bogus = "b.nope"
name = "zzz"
weights = [1, 2]
[stages.d]
kind = "sink"
models = ["c.model"]
tables = ["b"]
extra = "c"
`
	dir := writeRun(t, m, toml, nil)
	r, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Edge{{From: "a.out", To: "b.input"}, {From: "a.out", To: "c.inputs"}, {From: "b.out", To: "c.inputs"}, {From: "c", To: "d.extra"}, {From: "c.model", To: "d.models"}, {From: "b.out", To: "d.tables"}}
	if !slices.Equal(r.Graph.Edges, want) {
		t.Errorf("edges %v, want %v", r.Graph.Edges, want)
	}
	layout := map[string][2]int{}
	for _, n := range r.Graph.Nodes {
		layout[n.Stage] = [2]int{n.Layer, n.Row}
	}
	wantLayout := map[string][2]int{"a": {0, 0}, "e": {0, 1}, "b": {1, 0}, "c": {2, 0}, "d": {3, 0}}
	for s, w := range wantLayout {
		if layout[s] != w {
			t.Errorf("%s: layer, row %v, want %v", s, layout[s], w)
		}
	}
	if len(r.Stages) != 5 || r.Stages[0].Name != "a" || r.Stages[1].Name != "e" {
		t.Errorf("stages not in the manifest's order: %v", r.Stages)
	}
}

// TestHistoryCurves: history.csv gives the loss curve (train before val), the main metric's
// and the learning rate's (log scale); an empty cell is NaN; an older run without
// restored_epoch that stopped early marks the best epoch as restored, and the stop.
func TestHistoryCurves(t *testing.T) {
	m := &pipeline.Manifest{StageOrder: []string{"model"}, Stages: map[string]*pipeline.StageManifest{"model": stageManifest("train")}}
	m.Stages["model"].Info = map[string]any{"epochs": 3, "best_epoch": 2, "stopped_early": true}
	hist := "epoch,accuracy,batch_size,logloss,loss,lr,val_accuracy,val_logloss,val_loss\n" +
		"1,0.5,64,1.2,1.3,0.001,0.4,1.4,1.4\n2,0.7,64,0.9,1,0.001,0.6,1.1,1.1\n3,0.8,64,0.7,0.8,0.0005,,,\n"
	dir := writeRun(t, m, "", map[string]string{"stages/model/history.csv": hist})
	r, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Stages[0].Training
	if tr == nil || len(tr.Curves) != 3 {
		t.Fatalf("training %+v", tr)
	}
	loss, metric, lr := tr.Curves[0], tr.Curves[1], tr.Curves[2]
	if loss.Title != "loss" || len(loss.Series) != 2 || loss.Series[0].Name != "loss" || loss.Series[1].Name != "val_loss" {
		t.Fatalf("loss curve %+v", loss)
	}
	nearAll(t, "val_loss", loss.Series[1].Values, []float64{1.4, 1.1, math.NaN()})
	nearAll(t, "epochs", loss.X, []float64{1, 2, 3})
	if metric.Title != "accuracy" || len(metric.Series) != 2 || !lr.LogY || lr.Title != "learning rate" {
		t.Errorf("metric %+v, lr %+v", metric, lr)
	}
	wantMarks := []Mark{{X: 3, Label: "stopped early"}, {X: 2, Label: "restored"}}
	if !slices.Equal(loss.Marks, wantMarks) || !slices.Equal(metric.Marks, wantMarks) || lr.Marks != nil {
		t.Errorf("marks %v, %v, %v; want %v on loss and metric", loss.Marks, metric.Marks, lr.Marks, wantMarks)
	}
	if tr.Epochs != 3 || tr.BestEpoch != 2 || tr.StoppedAt != 3 {
		t.Errorf("epochs %d, best %d, stopped at %d", tr.Epochs, tr.BestEpoch, tr.StoppedAt)
	}
}

// TestGradEvalsCurve: an SVRG history (with grad_evals) adds the loss against gradient
// evaluations, on a log scale, with the evaluations as its x axis.
func TestGradEvalsCurve(t *testing.T) {
	m := &pipeline.Manifest{StageOrder: []string{"model"}, Stages: map[string]*pipeline.StageManifest{"model": stageManifest("train")}}
	hist := "epoch,grad_evals,loss,lr,val_loss\n1,1200,0.5,0.2,0.6\n2,2800,0.3,0.2,0.4\n"
	r, err := Build(writeRun(t, m, "", map[string]string{"stages/model/history.csv": hist}))
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Stages[0].Training
	if tr == nil || len(tr.Curves) != 3 {
		t.Fatalf("training %+v", tr)
	}
	c := tr.Curves[2]
	if c.Title != "loss against gradient evaluations" || !c.LogY || len(c.Series) != 2 || c.Series[1].Name != "val_loss" {
		t.Fatalf("curve %+v", c)
	}
	nearAll(t, "grad_evals", c.X, []float64{1200, 2800})
	nearAll(t, "val_loss", c.Series[1].Values, []float64{0.6, 0.4})
}

// TestUnreadableFilesDegrade: a history.csv with a bad cell and a damaged evaluation.json leave
// their sections out with a warning naming the file and the place; Build does not fail.
func TestUnreadableFilesDegrade(t *testing.T) {
	m := &pipeline.Manifest{StageOrder: []string{"model", "eval"}, Stages: map[string]*pipeline.StageManifest{"model": stageManifest("train"), "eval": stageManifest("evaluate")}}
	dir := writeRun(t, m, "", map[string]string{
		"stages/model/history.csv":    "epoch,loss\n1,0.5\n2,oops\n",
		"stages/eval/evaluation.json": `{"format_version": 1, "tables": [`,
	})
	r, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Stages[0].Training != nil || len(r.Stages[0].Warnings) != 1 ||
		!strings.Contains(r.Stages[0].Warnings[0], "stages/model/history.csv") || !strings.Contains(r.Stages[0].Warnings[0], `line 3, column "loss": "oops"`) {
		t.Errorf("model: training %v, warnings %q", r.Stages[0].Training, r.Stages[0].Warnings)
	}
	if r.Stages[1].Evaluation != nil || len(r.Stages[1].Warnings) != 1 || !strings.Contains(r.Stages[1].Warnings[0], "stages/eval/evaluation.json") {
		t.Errorf("eval: evaluation %v, warnings %q", r.Stages[1].Evaluation, r.Stages[1].Warnings)
	}
	if _, err := Build(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no manifest.json") {
		t.Errorf("a directory without a run: %v", err)
	}
}

// TestMonitorHistogramsOnCommonBins: each sample's histogram, over its own range, is spread
// on bins common to the layer's samples in proportion to the overlap; shares sum to 1; the
// update ratios of the layer's params are drawn over its steps with the healthy band; a
// head's params get their own entry; warnings go to their layers.
func TestMonitorHistogramsOnCommonBins(t *testing.T) {
	csv := "epoch,step,name,kind,act_mean,act_std,dead_fraction,grad_norm,param_norm,grad_to_param,update_to_param,hist_min,hist_max,hist_counts\n" +
		"1,10,L,dense,0,1,0.5,0.1,,,,0,2,2 2\n" +
		"1,10,L/W,param,,,,0.2,3,0.1,0.001,,,\n" +
		"1,10,head/W,param,,,,0.2,3,0.1,0.002,,,\n" +
		"1,20,L,dense,0,1,0.25,0.2,,,,0,4,1 3\n" +
		"1,20,L/W,param,,,,0.2,3,0.1,0.003,,,\n" +
		"1,20,head/W,param,,,,0.2,3,0.1,0.004,,,\n" +
		"2,30,L,dense,0,1,0,0.3,,,,1,3,4\n" +
		"2,40,L,dense,0,1,0,0.4,,,,3,3,5 0\n"
	info := map[string]any{"monitor_warnings": []any{"layer L: 60% of its units are dead", "L/W: update/param ratio 1e-7", "head/W: update/param ratio 2"}}
	dir := t.TempDir()
	path := filepath.Join(dir, "monitor.csv")
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	mon, err := readMonitor(path, info)
	if err != nil {
		t.Fatal(err)
	}
	if len(mon.Layers) != 2 || mon.Layers[0].Layer != "L" || mon.Layers[1].Layer != "head" {
		t.Fatalf("layers %+v", mon.Layers)
	}
	l := mon.Layers[0]
	nearAll(t, "steps", l.Steps, []float64{10, 20, 30, 40})
	nearAll(t, "edges", l.BinEdges, []float64{0, 2, 4})
	want := [][]float64{{1, 0}, {0.25, 0.75}, {0.5, 0.5}, {0, 1}}
	for i := range want {
		nearAll(t, fmt.Sprintf("step %d", i), l.Histogram[i], want[i])
	}
	if len(l.Curves) != 3 || l.Curves[0].Title != "dead units" || l.Curves[2].Title != "update/param ratio" {
		t.Fatalf("curves %+v", l.Curves)
	}
	nearAll(t, "dead", l.Curves[0].Series[0].Values, []float64{0.5, 0.25, 0, 0})
	ratio := l.Curves[2]
	nearAll(t, "L/W", ratio.Series[0].Values, []float64{0.001, 0.003, math.NaN(), math.NaN()})
	if !ratio.LogY || len(ratio.Bands) != 1 || ratio.Bands[0].Lo >= 1e-3 || ratio.Bands[0].Hi <= 1e-3 {
		t.Errorf("ratio chart: log %v, bands %v", ratio.LogY, ratio.Bands)
	}
	if l.Warning != "layer L: 60% of its units are dead; L/W: update/param ratio 1e-7" {
		t.Errorf("warning %q", l.Warning)
	}
	h := mon.Layers[1]
	nearAll(t, "head steps", h.Steps, []float64{10, 20})
	if h.Histogram != nil || len(h.Curves) != 1 || h.Warning != "head/W: update/param ratio 2" {
		t.Errorf("head %+v", h)
	}
	nearAll(t, "head/W", h.Curves[0].Series[0].Values, []float64{0.002, 0.004})

	// monitor.csv of an older run, without the histogram columns: the curves, no heatmap.
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(csv), "\n") {
		lines = append(lines, strings.Join(strings.Split(line, ",")[:11], ","))
	}
	old := strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	mon, err = readMonitor(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mon.Layers[0].Histogram != nil || mon.Layers[0].BinEdges != nil || len(mon.Layers[0].Curves) != 3 {
		t.Errorf("old monitor.csv: %+v", mon.Layers[0])
	}
}

// TestMonitorDownsampled: a layer sampled at 1,000 steps keeps MaxMonitorSteps of them, the
// first and the last included.
func TestMonitorDownsampled(t *testing.T) {
	var b strings.Builder
	b.WriteString("epoch,step,name,kind,dead_fraction,grad_norm,update_to_param,hist_min,hist_max,hist_counts\n")
	for s := 1; s <= 1000; s++ {
		fmt.Fprintf(&b, "1,%d,L,dense,0,1,,0,1,1 2 3\n1,%d,L/W,param,,1,0.001,,,\n", s, s)
	}
	path := filepath.Join(t.TempDir(), "monitor.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	mon, err := readMonitor(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := mon.Layers[0]
	if len(l.Steps) != MaxMonitorSteps || l.Steps[0] != 1 || l.Steps[len(l.Steps)-1] != 1000 || len(l.Histogram) != MaxMonitorSteps {
		t.Fatalf("%d steps from %v to %v, %d histograms", len(l.Steps), l.Steps[0], l.Steps[len(l.Steps)-1], len(l.Histogram))
	}
	for _, c := range l.Curves {
		for _, s := range c.Series {
			if len(s.Values) != MaxMonitorSteps || math.IsNaN(s.Values[len(s.Values)-1]) {
				t.Errorf("%s %s: %d values", c.Title, s.Name, len(s.Values))
			}
		}
	}
}

// TestImageShape: inputs are an image by the augment stage's spec, or by complete sets of
// pixel names (px0.., pixel_0.., pixel_<r>_<c>) on a square or grid of side ≥ 4; not
// otherwise.
func TestImageShape(t *testing.T) {
	names := func(format string, n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf(format, i))
		}
		return out
	}
	var grid []string
	for r := 0; r < 8; r++ {
		for c := 0; c < 8; c++ {
			grid = append(grid, fmt.Sprintf("pixel_%d_%d", c, r)) // column-major order in the file
		}
	}
	for _, tc := range []struct {
		name   string
		inputs []string
		config map[string]map[string]any
		h, w   int
		first  string
	}{
		{"px 28×28", names("px%d", 784), nil, 28, 28, "px0"},
		{"pixel_ 4×4 with another input", append([]string{"age"}, names("pixel_%d", 16)...), nil, 4, 4, "pixel_0"},
		{"pixel_r_c grid", grid, nil, 8, 8, "pixel_0_0"},
		{"not a square", names("px%d", 63), nil, 0, 0, ""},
		{"too small", names("px%d", 9), nil, 0, 0, ""},
		{"a gap", append(names("px%d", 15), "px16"), nil, 0, 0, ""},
		{"plain features", []string{"age", "bmi"}, nil, 0, 0, ""},
		{"augment spec", append([]string{"a"}, names("c%d", 6)...), map[string]map[string]any{"aug": {"kind": "augment", "image": map[string]any{"height": int64(2), "width": int64(3), "first": "c0"}}}, 2, 3, "c0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &builder{config: tc.config}
			h, w, px := b.imageShape(tc.inputs)
			if h != tc.h || w != tc.w || (px == nil) != (tc.h == 0) {
				t.Fatalf("%d × %d, %d pixels; want %d × %d", h, w, len(px), tc.h, tc.w)
			}
			if px != nil && (px[0] != tc.first || len(px) != h*w) {
				t.Errorf("pixels %v...", px[:min(3, len(px))])
			}
			if tc.name == "pixel_r_c grid" && px[1] != "pixel_0_1" {
				t.Errorf("grid not row-major: %v", px[:3])
			}
		})
	}
}

// TestGrayPNG: a row becomes a PNG of its shape, smallest value black, largest white.
func TestGrayPNG(t *testing.T) {
	uri, err := grayPNG([]float64{2, 4, 6, 3, 3, math.NaN()}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	data, ok := strings.CutPrefix(uri, "data:image/png;base64,")
	if !ok {
		t.Fatalf("not a PNG data URI: %.40s", uri)
	}
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 3 || b.Dy() != 2 {
		t.Fatalf("bounds %v", b)
	}
	want := [][]uint8{{0, 128, 255}, {64, 64, 0}}
	for y := range want {
		for x, w := range want[y] {
			r, _, _, _ := img.At(x, y).RGBA()
			if uint8(r>>8) != w {
				t.Errorf("(%d, %d) = %d, want %d", x, y, r>>8, w)
			}
		}
	}
}

// TestCrashedRunReadsAsCrashed: a manifest left "running" with its lock free is a crashed
// run; its running stage is shown as cut off by the crash.
func TestCrashedRunReadsAsCrashed(t *testing.T) {
	m := &pipeline.Manifest{Status: pipeline.StatusRunning, StageOrder: []string{"a", "b"}, Stages: map[string]*pipeline.StageManifest{
		"a": stageManifest("src", "out"), "b": {Kind: "train", Status: pipeline.StatusRunning}}}
	dir := writeRun(t, m, "", map[string]string{pipeline.LockFile: "pid 1\n"})
	r, err := BuildWith(dir, BuildOptions{Now: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Run.Status != pipeline.StatusCrashed || r.Stages[1].Status != pipeline.StatusCrashed || r.Stages[0].Status != pipeline.StatusSucceeded {
		t.Errorf("run %s, stages %s %s", r.Run.Status, r.Stages[0].Status, r.Stages[1].Status)
	}
	if len(r.Run.Warnings) == 0 || !strings.Contains(r.Run.Warnings[0], "crashed") || r.Graph.Nodes[1].Status != pipeline.StatusCrashed {
		t.Errorf("warnings %q, node %+v", r.Run.Warnings, r.Graph.Nodes[1])
	}
	if !r.Generated.Equal(time.Unix(0, 0)) {
		t.Errorf("generated %v", r.Generated)
	}
}
