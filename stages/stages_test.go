package stages

import (
	"context"
	"encoding/csv"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/features"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
)

// runTOML runs a pipeline written inline (relative paths resolve against dir) with a checked
// allocator, and returns the manifest and the run error.
func runTOML(t *testing.T, dir, src string, overrides ...string) (*pipeline.Manifest, string, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	p, err := pipeline.Parse([]byte(src), "test.toml", dir, registry(t), pipeline.LoadOptions{Overrides: overrides})
	if err != nil {
		return nil, "", err
	}
	runDir := filepath.Join(t.TempDir(), "run")
	res, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: runDir, Mem: mem})
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	// Read the manifest back from disk, as a user's tools would.
	b, rerr := os.ReadFile(filepath.Join(runDir, "manifest.json"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	m, rerr := pipeline.ReadManifest(b)
	if rerr != nil {
		t.Fatal(rerr)
	}
	return m, runDir, err
}

func TestCSVBadRowNamesFileLineColumnStage(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "d.csv"), []byte("a,b,target\n1,2.5,x\n2,oops,y\n3,4.5,x\n"), 0o644)
	src := "[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\nschema = { b = \"float64\" }\n"
	_, _, err := runTOML(t, dir, src)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`stage "load"`, "d.csv:3", `column "b"`, `"oops"`, "on_bad_row"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	m, _, err := runTOML(t, dir, src+"on_bad_row = \"skip\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if m.Stages["load"].RowsOut != 2 || m.Stages["load"].Metrics["skipped_rows"] != 1 {
		t.Errorf("skip: rows %d, skipped %v", m.Stages["load"].RowsOut, m.Stages["load"].Metrics["skipped_rows"])
	}
}

func TestMissingFileIsAConfigError(t *testing.T) {
	_, _, err := runTOML(t, t.TempDir(), "[stages.load]\nkind = \"csv\"\npath = \"nope.csv\"\n")
	if err == nil || !strings.Contains(err.Error(), "nope.csv") {
		t.Errorf("missing file: %v", err)
	}
}

const splitSrc = `
[pipeline]
seed = 4
[stages.load]
kind = "dataset"
name = "credit_data"
[stages.split]
kind = "split"
input = "load"
train_dev = 0.1
[stages.impute]
kind = "impute"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.save]
kind = "write"
input = "impute.val"
path = "val.csv"
`

func TestSplitStratifiesAndAudits(t *testing.T) {
	m, dir, err := runTOML(t, ".", splitSrc)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Stages["split"]
	total := 0.0
	for _, k := range []string{"train_rows", "train_dev_rows", "val_rows", "test_rows"} {
		total += s.Metrics[k]
	}
	if total != 4454 {
		t.Errorf("split rows add up to %v", total)
	}
	// Sized by rows: 4,454 rows → 70/15/15 with train_dev carved from train.
	if v := s.Metrics["val_rows"]; v < 667 || v > 669 {
		t.Errorf("val rows %v, want 15%% of 4454 ≈ 668", v)
	}
	// Stratified: the "bad" share in every split within one row of the overall share.
	counts := s.Info["class_counts"].(map[string]any)
	for split, c := range counts {
		cm := c.(map[string]any)
		bad, good := cm["bad"].(float64), cm["good"].(float64)
		want := (bad + good) * 1254 / 4454
		if bad < want-1.5 || bad > want+1.5 {
			t.Errorf("%s: %v bad rows, want %.1f ± 1", split, bad, want)
		}
	}
	leak, ok := m.Run["leakage"].(map[string]any)
	if !ok {
		t.Fatalf("no leakage audit: %v", m.Run)
	}
	if leak["group_overlap"] != nil {
		t.Errorf("group_overlap without group_by: %v", leak["group_overlap"])
	}
	fitted := leak["fitted"].([]any)
	if len(fitted) != 1 || fitted[0].(map[string]any)["split"] != "train" {
		t.Errorf("fitted audit: %v", fitted)
	}
	// The written val table has no null left in imputed columns, and the right rows.
	f, err := os.Open(filepath.Join(dir, "stages/save/val.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, _ := csv.NewReader(f).ReadAll()
	if len(rows)-1 != int(s.Metrics["val_rows"]) {
		t.Errorf("val.csv has %d rows", len(rows)-1)
	}
	header := rows[0]
	for ci, name := range header {
		if name != "income" {
			continue
		}
		for _, r := range rows[1:] {
			if r[ci] == "" {
				t.Fatal("income still has nulls after impute")
			}
		}
	}
}

func TestGroupSplitKeepsGroupsApart(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("patient,x,target\n")
	for i := 0; i < 600; i++ {
		b.WriteString("p" + strconv.Itoa(i%97) + "," + strconv.Itoa(i) + "," + strconv.Itoa(i%2) + "\n")
	}
	os.WriteFile(filepath.Join(dir, "g.csv"), []byte(b.String()), 0o644)
	for seed := 0; seed < 5; seed++ {
		src := "[pipeline]\nseed = " + strconv.Itoa(seed) + "\n[stages.load]\nkind = \"csv\"\npath = \"g.csv\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\ngroup_by = \"patient\"\n"
		m, _, err := runTOML(t, dir, src)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := m.Stages["split"].Metrics["group_overlap"]; !ok || v != 0 {
			t.Errorf("seed %d: group_overlap %v", seed, v)
		}
		if m.Run["leakage"].(map[string]any)["group_overlap"].(float64) != 0 {
			t.Errorf("seed %d: leakage audit", seed)
		}
	}
}

func TestFitOnTestIsRefused(t *testing.T) {
	src := "[stages.load]\nkind = \"dataset\"\nname = \"iris\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\n[stages.n]\nkind = \"normalize\"\nfit = \"split.test\"\napply = [\"split.train\"]\n"
	// The config says split.test is the test split: refused when the pipeline loads, at the
	// key, before anything runs.
	_, _, err := runTOML(t, ".", src)
	ces := pipeline.ConfigErrors(err)
	if len(ces) != 1 || ces[0].Key != "fit" || ces[0].Line != 9 || !strings.Contains(ces[0].Msg, `"split.test" is the test split`) {
		t.Errorf("fit on test: %v", err)
	}
	// Through a transform, the role follows the rows: impute.test carries split.test's.
	src2 := strings.Replace(src, "[stages.n]", "[stages.imp]\nkind = \"impute\"\nfit = \"split.train\"\napply = [\"split.train\", \"split.test\"]\n[stages.n]", 1)
	src2 = strings.Replace(src2, `fit = "split.test"`, `fit = "imp.test"`, 1)
	_, _, err = runTOML(t, ".", src2)
	if ces := pipeline.ConfigErrors(err); len(ces) != 1 || !strings.Contains(ces[0].Msg, `"imp.test" is the test split`) {
		t.Errorf("fit on a transformed test table: %v", err)
	}
}

func TestUnknownLabelInValIsAnError(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("x,target,split\n")
	for i := 0; i < 40; i++ {
		b.WriteString(strconv.Itoa(i) + "," + []string{"a", "b"}[i%2] + ",train\n")
	}
	b.WriteString("7,c,val\n3,a,val\n5,b,test\n")
	os.WriteFile(filepath.Join(dir, "u.csv"), []byte(b.String()), 0o644)
	src := `
[stages.load]
kind = "csv"
path = "u.csv"
[stages.split]
kind = "split"
input = "load"
split_column = "split"
[stages.model]
kind = "train"
train = "split.train"
val = "split.val"
features = ["x"]
epochs = 2
`
	_, _, err := runTOML(t, dir, src)
	if err == nil || !strings.Contains(err.Error(), `label "c"`) || !strings.Contains(err.Error(), "not in the training set") || !strings.Contains(err.Error(), "row 41") {
		t.Errorf("unknown label: %v", err)
	}
}

func TestMaskLabels(t *testing.T) {
	src := `
[stages.load]
kind = "dataset"
name = "digits"
[stages.few]
kind = "mask_labels"
input = "load"
per_class = 5
val_per_class = 2
`
	m, _, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	s := m.Stages["few"]
	if s.Metrics["train_labelled_rows"] != 50 || s.Metrics["val_rows"] != 20 || s.Metrics["train_hidden_rows"] != 1797-70 {
		t.Errorf("mask_labels metrics: %v", s.Metrics)
	}
}

// TestPredictRoundTrip trains on digits, then checks that the bundle's predictions on the raw
// CSV (as pipe predict does) equal the run's predict stage on the same rows.
func TestPredictRoundTrip(t *testing.T) {
	src := `
[pipeline]
seed = 2
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.normalize]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.model]
kind = "train"
train = "normalize.train"
val = "normalize.val"
layers = [ { dense = 32 } ]
epochs = 5
[stages.scores]
kind = "predict"
model = "model.model"
input = "split.test"
[stages.save]
kind = "write"
input = "scores"
path = "scores.csv"
`
	_, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	runPreds := readCSV(t, filepath.Join(dir, "stages/save/scores.csv"))
	p, err := bundle.Load(filepath.Join(dir, "stages/model/bundle"), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	header, byRow := predictCSV(t, p, "../datasets/data/digits/digits.csv")
	samePredictions(t, runPreds, header, byRow)
	if len(runPreds) < 200 {
		t.Errorf("only %d predictions", len(runPreds)-1)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestAugmentStage(t *testing.T) {
	src := `
[pipeline]
seed = 3
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
method = "minmax"
[stages.aug]
kind = "augment"
input = "scale.train"
noise = 0.05
feature_dropout = 0.05
[stages.model]
kind = "train"
train = "aug"
val = "scale.val"
layers = [ { dense = 128 } ]
epochs = 60
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["scale.test"]
`
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(m.Stages["model"].Notes, "\n")
	if !strings.Contains(notes, "augmented (aug)") {
		t.Errorf("train notes lack the augmentation: %q", notes)
	}
	if acc := m.Stages["eval"].Metrics["test_accuracy"]; acc < 0.95 {
		t.Errorf("test accuracy with augmentation %.3f, below 0.95", acc)
	}
	// The bundle does not replay augmentation at prediction time.
	b, err := bundle.LoadModel(filepath.Join(dir, "stages/model/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range b.Meta.Preprocessing {
		if s.Kind == "augment" {
			t.Error("the bundle carries the train-time augmentation")
		}
	}
	// Augmenting a held-out table is refused when the pipeline loads.
	bad := strings.Replace(src, `input = "scale.train"`, `input = "scale.val"`, 1)
	if _, _, err := runTOML(t, ".", bad); !pipeline.IsConfigError(err) || !strings.Contains(err.Error(), `"scale.val" is the val split`) {
		t.Errorf("augmenting val: %v", err)
	}
}

// TestAugmenterImageOffset: the image region starts at the `first` column's position among the
// model's numeric inputs, wherever other columns come.
func TestAugmenterImageOffset(t *testing.T) {
	plan := &bundle.InputPlan{Numeric: []string{"age", "px0", "px1", "px2", "px3"}}
	spec := &AugmentSpec{Shift: 1}
	spec.Image = &struct {
		Height int    `json:"height"`
		Width  int    `json:"width"`
		First  string `json:"first"`
	}{2, 2, "px0"}
	aug, err := augmenterFor([]pipeline.LineageStep{{Stage: "aug", Transform: spec}}, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for trial := 0; trial < 20; trial++ {
		b := nn.Batch{Rows: 1, X: []float32{42, 1, 2, 3, 4}}
		aug(&b, nil, rng)
		if b.X[0] != 42 {
			t.Fatalf("the column before the image changed: %v", b.X)
		}
		var sum float32
		for _, v := range b.X[1:] {
			sum += v
		}
		if sum > 10 {
			t.Fatalf("shift created pixels: %v", b.X)
		}
	}
	spec.Image.First = "nope"
	if _, err := augmenterFor([]pipeline.LineageStep{{Stage: "aug", Transform: spec}}, plan, nil); err == nil {
		t.Error("unknown image column accepted")
	}
}

const ensembleSrc = `
[pipeline]
seed = 5
[stages.load]
kind = "dataset"
name = "wine"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.members]
kind = "ensemble"
train = "scale.train"
val = "scale.val"
members = 4
workers = 1
member = { layers = [ { dense = 16 } ], epochs = 15 }
vary = { dropout = [0.0, 0.3] }
[stages.mean]
kind = "combine"
ensemble = "members.ensemble"
method = "mean"
[stages.scores]
kind = "predict"
model = "mean.model"
input = "split.test"
[stages.save]
kind = "write"
input = "scores"
path = "scores.csv"
`

// TestEnsembleSameResultWhateverTheWorkers: 1 or 2 workers give identical predictions.
func TestEnsembleSameResultWhateverTheWorkers(t *testing.T) {
	_, dir1, err := runTOML(t, ".", ensembleSrc)
	if err != nil {
		t.Fatal(err)
	}
	_, dir2, err := runTOML(t, ".", ensembleSrc, "members.workers=2", "pipeline.workers=2")
	if err != nil {
		t.Fatal(err)
	}
	a := readCSV(t, filepath.Join(dir1, "stages/save/scores.csv"))
	b := readCSV(t, filepath.Join(dir2, "stages/save/scores.csv"))
	if len(a) != len(b) || len(a) < 20 {
		t.Fatalf("%d vs %d rows", len(a), len(b))
	}
	for i := range a {
		if strings.Join(a[i], ",") != strings.Join(b[i], ",") {
			t.Fatalf("row %d differs:\n%v\n%v", i, a[i], b[i])
		}
	}
	// The ensemble bundle loads alone and predicts the same as the run.
	p, err := bundle.Load(filepath.Join(dir1, "stages/mean/bundle"), features.Decoders())
	if err != nil {
		t.Fatal(err)
	}
	if p.ArtifactKind() != "ensemble" {
		t.Errorf("kind %s", p.ArtifactKind())
	}
	// Its predictions on the raw CSV rows equal the run's predictions on those rows.
	header, byRow := predictCSV(t, p, "../datasets/data/wine/wine.csv")
	samePredictions(t, a, header, byRow)
}

// predictCSV runs Predict over a raw CSV file and returns the header and each row's printed
// values, by _row.
func predictCSV(t *testing.T, p bundle.Predictor, path string) (header []string, byRow map[string][]string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r, err := tableio.OpenFile(path, mem, tableio.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	byRow = map[string][]string{}
	_, err = bundle.Predict(context.Background(), p, r, mem, bundle.PredictOptions{}, func(rec arrow.RecordBatch) error {
		if header == nil {
			for _, f := range rec.Schema().Fields() {
				header = append(header, f.Name)
			}
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]string, rec.NumCols())
			for c := range row {
				row[c] = rec.Column(c).ValueStr(i)
			}
			byRow[row[0]] = row
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return header, byRow
}

// samePredictions checks that a run's written predictions (header first) equal Predict's, up
// to float32 rounding: a BLAS may round a row differently in a batch of another size (OpenBLAS
// does; the default GEMM does not).
func samePredictions(t *testing.T, run [][]string, header []string, byRow map[string][]string) {
	t.Helper()
	if strings.Join(header, ",") != strings.Join(run[0], ",") {
		t.Fatalf("headers differ:\n%v\n%v", header, run[0])
	}
	for _, row := range run[1:] {
		got := byRow[row[0]]
		if len(got) != len(row) {
			t.Fatalf("row %s: run %v, bundle %v", row[0], row, got)
		}
		for c := range row {
			x, _ := strconv.ParseFloat(row[c], 64)
			y, _ := strconv.ParseFloat(got[c], 64)
			if row[c] != got[c] && math.Abs(x-y) > 1e-6 {
				t.Fatalf("row %s column %s: run %s, bundle %s", row[0], header[c], row[c], got[c])
			}
		}
	}
}

// TestEnsembleDropsAFailingMember: under on_member_error = "drop" the run ends degraded, with
// the member and its error in the manifest; under "fail" the run fails.
func TestEnsembleDropsAFailingMember(t *testing.T) {
	src := strings.Replace(ensembleSrc, `member = { layers = [ { dense = 16 } ], epochs = 15 }`,
		`specs = [ { layers = [ { dense = 16 } ], epochs = 5 }, { layers = [ { dense = 16 }, { custom = "nope" } ], epochs = 5 } ]
on_member_error = "drop"`, 1)
	m, _, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatalf("drop policy: %v", err)
	}
	if m.Status != pipeline.StatusDegraded || m.ExitCode != pipeline.ExitDegraded {
		t.Errorf("status %s exit %d", m.Status, m.ExitCode)
	}
	if len(m.Dropped) != 2 || !strings.Contains(m.Dropped[0], "nope") {
		t.Errorf("dropped: %v", m.Dropped)
	}
	if m.Stages["members"].Metrics["members_kept"] != 2 {
		t.Errorf("kept %v", m.Stages["members"].Metrics["members_kept"])
	}
	_, _, err = runTOML(t, ".", strings.Replace(src, `on_member_error = "drop"`, `on_member_error = "fail"`, 1))
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("fail policy: %v", err)
	}
}

// TestTransferLoadsAndFreezes: init_from loads the named layers, frozen layers do not move, a
// shape mismatch is a clear error.
func TestTransferLoadsAndFreezes(t *testing.T) {
	src := `
[pipeline]
seed = 8
[stages.load]
kind = "dataset"
name = "digits"
[stages.split]
kind = "split"
input = "load"
[stages.scale]
kind = "normalize"
fit = "split.train"
apply = ["split.train", "split.val", "split.test"]
[stages.base]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 32, name = "enc_1" }, { dense = 16, name = "enc_2" } ]
epochs = 5
[stages.tuned]
kind = "train"
train = "scale.train"
val = "scale.val"
init_from = "base.model"
freeze = ["enc_1"]
epochs = 5
`
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Stages["tuned"].Info["transferred_layers"]; fmt.Sprint(got) != "[enc_1 enc_2]" {
		t.Errorf("transferred layers %v", got)
	}
	base, err := bundle.LoadModel(filepath.Join(dir, "stages/base/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	tuned, err := bundle.LoadModel(filepath.Join(dir, "stages/tuned/bundle"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"enc_1/W", "enc_1/b"} {
		a, b := base.Model.Param(name).Value, tuned.Model.Param(name).Value
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s[%d]: frozen layer moved (%v -> %v)", name, i, a[i], b[i])
			}
		}
	}
	moved := false
	a, b := base.Model.Param("enc_2/W").Value, tuned.Model.Param("enc_2/W").Value
	for i := range a {
		if a[i] != b[i] {
			moved = true
		}
	}
	if !moved {
		t.Error("the unfrozen transferred layer did not train")
	}
	if s := m.Stages["tuned"].Info; s == nil {
		t.Error("no info")
	}
	// A shape mismatch names the tensor and both shapes.
	bad := strings.Replace(src, "init_from = \"base.model\"", "init_from = \"base.model\"\nlayers = [ { dense = 8, name = \"enc_1\" } ]", 1)
	if _, _, err := runTOML(t, ".", bad); err == nil || !strings.Contains(err.Error(), "enc_1/W has shape") {
		t.Errorf("shape mismatch: %v", err)
	}
}
