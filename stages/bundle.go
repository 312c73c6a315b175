package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// Bundle format identifiers. BundleVersion changes when a reader of an older version could
// misread a newer bundle.
const (
	BundleFormat  = "pipe.bundle"
	BundleVersion = 1
)

// BundleMeta is bundle.json: everything but the weights.
type BundleMeta struct {
	Format        string        `json:"format"`
	FormatVersion int           `json:"format_version"`
	Kind          string        `json:"kind"` // "model"
	Pipeline      string        `json:"pipeline,omitempty"`
	Stage         string        `json:"stage,omitempty"`
	CreatedAt     time.Time     `json:"created_at"`
	PipeVersion   string        `json:"pipe_version,omitempty"`
	Input         []ColumnEntry `json:"input"` // the source columns prediction needs
	Preprocessing []PreStep     `json:"preprocessing"`
	Plan          InputPlan     `json:"plan"`
	ModelDir      string        `json:"model_dir,omitempty"`
	// EnsembleDir holds the members of an ensemble bundle; Combiners the combiner used per
	// head.
	EnsembleDir string             `json:"ensemble_dir,omitempty"`
	Combiners   map[string]string  `json:"combiners,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
}

// PreStep is one fitted transform of the bundle's preprocessing chain, stored in its own file.
type PreStep struct {
	Stage string `json:"stage"`
	Kind  string `json:"kind"`
	File  string `json:"file"`
}

// Bundle is a self-contained model: its input schema, its fitted preprocessing chain, the
// network and the label encodings. It is the artifact of the train stage, and what predict,
// evaluate, `pipe predict`, `pipe summary` and init_from take.
type Bundle struct {
	Meta  BundleMeta
	Model *nn.Model
	Pre   []features.Transform
	// Dir is where the bundle is stored on disk ("" until saved).
	Dir string
}

// ArtifactKind is "bundle".
func (b *Bundle) ArtifactKind() string { return "bundle" }

// newBundle assembles a bundle from a trained model and the lineage of its training table.
func newBundle(stage string, m *nn.Model, plan *InputPlan, lineage []pipeline.LineageStep, trainSchema *arrow.Schema) (*Bundle, error) {
	b := &Bundle{Model: m, Meta: BundleMeta{Format: BundleFormat, FormatVersion: BundleVersion, Kind: "model", Stage: stage,
		CreatedAt: time.Now().UTC(), Plan: *plan, ModelDir: "model"}}
	src := trainSchema
	for i, st := range lineage {
		if i == 0 && st.Input != nil {
			src = st.Input
		}
		if _, train := st.Transform.(*AugmentSpec); train || st.Transform == nil {
			continue // train-time only: not replayed at prediction time
		}
		ft, ok := st.Transform.(fittedTransform)
		if !ok {
			return nil, fmt.Errorf("lineage step %s (%s) cannot be bundled", st.Stage, st.Kind)
		}
		b.Pre = append(b.Pre, ft.t)
		b.Meta.Preprocessing = append(b.Meta.Preprocessing, PreStep{Stage: st.Stage, Kind: st.Kind, File: fmt.Sprintf("pre_%02d_%s.json", i+1, st.Kind)})
	}
	targets := map[string]bool{}
	for _, t := range plan.Targets {
		targets[t.Column] = true
	}
	for _, f := range src.Fields() {
		if schema.Role(f) == schema.RoleFeature && !targets[f.Name] {
			b.Meta.Input = append(b.Meta.Input, ColumnEntry{Name: f.Name, Type: f.Type.String(), Role: schema.RoleFeature})
		}
	}
	return b, nil
}

// Save writes the bundle to dir (created; must not hold a bundle already). Every file is
// written atomically; bundle.json is written last, so a directory without it is not a bundle.
func (b *Bundle) Save(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "bundle.json")); err == nil {
		return fmt.Errorf("save bundle: %s already holds a bundle", dir)
	}
	if err := b.savePre(dir); err != nil {
		return err
	}
	if err := b.Model.Save(filepath.Join(dir, b.Meta.ModelDir)); err != nil {
		return fmt.Errorf("save bundle: %w", err)
	}
	return b.saveMeta(dir)
}

func (b *Bundle) savePre(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, t := range b.Pre {
		state, err := features.Marshal(t)
		if err != nil {
			return err
		}
		if err := pipeline.WriteFileAtomic(filepath.Join(dir, b.Meta.Preprocessing[i].File), state); err != nil {
			return err
		}
	}
	return nil
}

// saveMeta writes bundle.json, last: a directory without it is not a bundle.
func (b *Bundle) saveMeta(dir string) error {
	meta, err := json.MarshalIndent(b.Meta, "", "  ")
	if err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(filepath.Join(dir, "bundle.json"), append(meta, '\n')); err != nil {
		return err
	}
	b.Dir = dir
	return nil
}

// LoadBundle reads a single-model bundle directory. An older or newer format, a missing file or
// a damaged one is a clear error.
func LoadBundle(dir string) (*Bundle, error) {
	b, kind, err := loadBundleMeta(dir)
	if err != nil {
		return nil, err
	}
	if kind == "ensemble" {
		return nil, fmt.Errorf("%s is an ensemble bundle; load it with LoadPredictor", dir)
	}
	m, err := nn.Load(filepath.Join(dir, b.Meta.ModelDir))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	b.Model = m
	return b, nil
}

// loadBundleMeta reads bundle.json and the preprocessing chain.
func loadBundleMeta(dir string) (*Bundle, string, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "bundle.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("%s is not a pipe bundle (no bundle.json); a bundle is the directory stages/<train stage>/bundle of a run", dir)
		}
		return nil, "", err
	}
	var probe struct {
		Format        string `json:"format"`
		FormatVersion int    `json:"format_version"`
		Kind          string `json:"kind"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, "", fmt.Errorf("%s/bundle.json is damaged: %v", dir, err)
	}
	if probe.Format != BundleFormat {
		return nil, "", fmt.Errorf("%s/bundle.json is not a pipe bundle (format %q)", dir, probe.Format)
	}
	if probe.FormatVersion != BundleVersion {
		return nil, "", fmt.Errorf("%s: bundle format version %d, this pipe reads version %d; retrain with this pipe, or use the pipe version that wrote it", dir, probe.FormatVersion, BundleVersion)
	}
	b := &Bundle{Dir: dir}
	if err := json.Unmarshal(raw, &b.Meta); err != nil {
		return nil, "", fmt.Errorf("%s/bundle.json: %v", dir, err)
	}
	for _, p := range b.Meta.Preprocessing {
		state, err := os.ReadFile(filepath.Join(dir, p.File))
		if err != nil {
			return nil, "", fmt.Errorf("bundle %s: preprocessing step %s: %v", dir, p.Kind, err)
		}
		t, err := features.Unmarshal(state)
		if err != nil {
			return nil, "", fmt.Errorf("bundle %s: preprocessing step %s: %v", dir, p.Kind, err)
		}
		b.Pre = append(b.Pre, t)
	}
	return b, probe.Kind, nil
}

// CheckInput reports whether a raw input schema has every column the bundle needs.
func (b *Bundle) CheckInput(s *arrow.Schema) error {
	var missing []string
	for _, c := range b.Meta.Input {
		if s.FieldIndices(c.Name) == nil {
			missing = append(missing, c.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the input lacks %d column(s) the model was trained on: %v", len(missing), missing)
	}
	return nil
}

// Preprocess applies the fitted chain to a raw batch. The caller releases the result.
func (b *Bundle) Preprocess(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	rec.Retain()
	for i, t := range b.Pre {
		out, err := t.Apply(ctx, mem, rec)
		rec.Release()
		if err != nil {
			return nil, fmt.Errorf("preprocessing step %d (%s): %w", i+1, t.Kind(), err)
		}
		rec = out
	}
	return rec, nil
}

// predictionFields are the columns predict adds for one target.
func predictionFields(t TargetPlan) []arrow.Field {
	var fs []arrow.Field
	switch t.Task {
	case taskRegression:
		fs = append(fs, arrow.Field{Name: t.Column + "_pred", Type: arrow.PrimitiveTypes.Float64})
	default:
		predType := arrow.DataType(arrow.BinaryTypes.String)
		if t.Integer {
			predType = arrow.PrimitiveTypes.Int64
		}
		fs = append(fs, arrow.Field{Name: t.Column + "_pred", Type: predType})
		for _, l := range t.Labels {
			fs = append(fs, arrow.Field{Name: t.Column + "_prob_" + l, Type: arrow.PrimitiveTypes.Float32})
		}
	}
	return fs
}

// appendPredictions builds the prediction columns of one target from head outputs (rows × w).
func appendPredictions(mem memory.Allocator, t TargetPlan, out []float32, w, rows int) ([]arrow.Array, error) {
	var cols []arrow.Array
	switch t.Task {
	case taskRegression:
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		for i := 0; i < rows; i++ {
			b.Append(float64(out[i*w])*t.Std + t.Mean)
		}
		cols = append(cols, b.NewArray())
	default:
		k := len(t.Labels)
		if t.Integer {
			b := array.NewInt64Builder(mem)
			defer b.Release()
			for i := 0; i < rows; i++ {
				v, _ := strconv.ParseInt(t.Labels[argmax(out[i*w:i*w+k])], 10, 64)
				b.Append(v)
			}
			cols = append(cols, b.NewArray())
		} else {
			b := array.NewStringBuilder(mem)
			defer b.Release()
			for i := 0; i < rows; i++ {
				b.Append(t.Labels[argmax(out[i*w:i*w+k])])
			}
			cols = append(cols, b.NewArray())
		}
		for c := 0; c < k; c++ {
			b := array.NewFloat32Builder(mem)
			for i := 0; i < rows; i++ {
				b.Append(out[i*w+c])
			}
			cols = append(cols, b.NewArray())
			b.Release()
		}
	}
	return cols, nil
}

func argmax(p []float32) int {
	best, bi := float32(math.Inf(-1)), 0
	for i, v := range p {
		if v > best {
			best, bi = v, i
		}
	}
	return bi
}
