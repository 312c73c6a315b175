package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/atomicfile"
	"github.com/pipe-ml/pipe/internal/names"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/schema"
)

// Format identifiers of bundle.json. Version changes when a reader of an older version could
// misread a newer bundle; Load reads versions 1 (no checksums) to Version.
const (
	Format  = "pipe.bundle"
	Version = 2
	// MetaFile is the bundle's description, written last: a directory without it is not a
	// bundle.
	MetaFile = "bundle.json"
)

// Meta is bundle.json: everything but the weights and the preprocessing states.
type Meta struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	Kind          string    `json:"kind"` // "model" or "ensemble"
	Pipeline      string    `json:"pipeline,omitempty"`
	Stage         string    `json:"stage,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	PipeVersion   string    `json:"pipe_version,omitempty"`
	// Partial marks the best-so-far weights of a training that was interrupted (Ctrl-C, a
	// deadline): a usable model, but not the one the run was configured to produce.
	Partial bool `json:"partial,omitempty"`
	// Refit marks a model trained on its validation rows too (a search stage's refit = true,
	// for the best trial's epoch count): it has no validation metric of its own.
	Refit bool `json:"refit,omitempty"`
	// Input lists the source columns prediction needs (features of the raw rows).
	Input         []ColumnEntry `json:"input"`
	Preprocessing []PreStep     `json:"preprocessing"`
	Plan          InputPlan     `json:"plan"`
	ModelDir      string        `json:"model_dir,omitempty"`
	// EnsembleDir holds the members of an ensemble bundle; Combiners the combiner used per
	// head.
	EnsembleDir string             `json:"ensemble_dir,omitempty"`
	Combiners   map[string]string  `json:"combiners,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	// Files maps every other file of the bundle (a path relative to the bundle, with '/') to
	// its SHA-256; Load verifies them all.
	Files map[string]string `json:"files,omitempty"`
	// MetaSHA256 is the SHA-256 of bundle.json as written with this field empty.
	MetaSHA256 string `json:"meta_sha256,omitempty"`
}

// PreStep is one fitted transform of the bundle's preprocessing chain, stored in its own file.
type PreStep struct {
	Stage string `json:"stage"`
	Kind  string `json:"kind"`
	File  string `json:"file"`
}

// Step is one step of the chain that produced a training table, as the engine records it (its
// lineage). New turns the steps into the bundle's preprocessing.
type Step struct {
	Stage string
	Kind  string
	// Transform replays the step on raw rows; nil when the step cannot be saved.
	Transform Transform
	// TrainOnly marks a step that changes training batches only (augmentation): it is not
	// replayed at prediction time.
	TrainOnly bool
	// Input is the schema of the table the step was applied to: the first step's is the
	// source's, whose feature columns a bundle asks for at prediction time.
	Input *arrow.Schema
}

// Bundle is a self-contained model: the input columns it asks for, its fitted preprocessing
// chain, the plan and the network. It is the artifact of the train stage, and what predict,
// evaluate, `pipe predict`, `pipe summary` and init_from take.
type Bundle struct {
	Meta  Meta
	Model *nn.Model
	Pre   []Transform
	// Dir is where the bundle is stored on disk ("" until saved or when built in memory).
	Dir string
}

// ArtifactKind is "bundle": a Bundle flows on the engine's artifact edges.
func (b *Bundle) ArtifactKind() string { return "bundle" }

// CheckSteps reports whether a training table's chain can be bundled: every step is
// replayable or train-only. Call it before training, so that a chain that cannot be bundled
// is refused before the work is done.
func CheckSteps(steps []Step) error {
	for _, st := range steps {
		if st.Transform == nil && !st.TrainOnly {
			return fmt.Errorf("stage %q (kind %s) transformed the training table, but its transform cannot be saved in the model bundle, "+
				"so a prediction on raw rows would skip it and be silently wrong; make the kind bundleable (build it with "+
				"pipeline.ReplayableTransformStage and register its decoder with bundle.Decoders.Register, as examples/customstage does), "+
				"or transform the data before pipe reads it", st.Stage, st.Kind)
		}
	}
	return nil
}

// New assembles the bundle of a trained model from its plan and the chain of steps that
// produced its training table. trainSchema is the training table's schema (the source
// columns when the chain is empty).
func New(stage string, m *nn.Model, plan *InputPlan, steps []Step, trainSchema *arrow.Schema) (*Bundle, error) {
	if err := CheckSteps(steps); err != nil {
		return nil, err
	}
	b := &Bundle{Model: m, Meta: Meta{Format: Format, FormatVersion: Version, Kind: "model", Stage: stage,
		CreatedAt: time.Now().UTC(), Plan: *plan, ModelDir: "model"}}
	src := trainSchema
	if len(steps) > 0 && steps[0].Input != nil {
		src = steps[0].Input
	}
	for i, st := range steps {
		if st.TrainOnly {
			continue // train-time only: not replayed at prediction time
		}
		b.Pre = append(b.Pre, st.Transform)
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

// Save writes the bundle to dir (created; it must not hold a bundle already): the
// preprocessing states, the model, then bundle.json with every file's checksum. Every file is
// written atomically and bundle.json last, so a directory without it is not a bundle.
func (b *Bundle) Save(dir string) error {
	if b.Model == nil {
		return fmt.Errorf("save bundle: no model")
	}
	if err := b.begin(dir); err != nil {
		return err
	}
	if err := b.Model.Save(filepath.Join(dir, b.Meta.ModelDir)); err != nil {
		return fmt.Errorf("save bundle: %w", err)
	}
	return b.finish(dir)
}

// begin checks dir and writes the preprocessing states.
func (b *Bundle) begin(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, MetaFile)); err == nil {
		return fmt.Errorf("save bundle: %s already holds a bundle", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save bundle: %w", err)
	}
	if len(b.Pre) != len(b.Meta.Preprocessing) {
		return fmt.Errorf("save bundle: %d transforms for %d preprocessing steps", len(b.Pre), len(b.Meta.Preprocessing))
	}
	for i, t := range b.Pre {
		state, err := t.Marshal()
		if err != nil {
			return fmt.Errorf("save bundle: preprocessing step %d (%s): %w", i+1, t.Kind(), err)
		}
		if err := atomicfile.Write(filepath.Join(dir, b.Meta.Preprocessing[i].File), state); err != nil {
			return fmt.Errorf("save bundle: %w", err)
		}
	}
	return nil
}

// finish records the checksum of every file under dir and writes bundle.json, last.
func (b *Bundle) finish(dir string) error {
	b.Meta.Format, b.Meta.FormatVersion = Format, Version
	files, err := checksums(dir)
	if err != nil {
		return fmt.Errorf("save bundle: %w", err)
	}
	b.Meta.Files = files
	b.Meta.MetaSHA256 = ""
	raw, err := json.MarshalIndent(b.Meta, "", "  ")
	if err != nil {
		return fmt.Errorf("save bundle: encode %s: %w", MetaFile, err)
	}
	raw = append(raw, '\n')
	sum := sha256.Sum256(raw)
	b.Meta.MetaSHA256 = hex.EncodeToString(sum[:])
	raw, err = json.MarshalIndent(b.Meta, "", "  ")
	if err != nil {
		return fmt.Errorf("save bundle: encode %s: %w", MetaFile, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, MetaFile), append(raw, '\n')); err != nil {
		return fmt.Errorf("save bundle: %w", err)
	}
	b.Dir = dir
	return nil
}

// checksums returns the SHA-256 of every regular file under dir but bundle.json and
// temporary files, by slash-separated relative path.
func checksums(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || atomicfile.IsTemp(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == MetaFile {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return err
		}
		out[rel] = sum
		return nil
	})
	return out, err
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

var metaSumRE = regexp.MustCompile(`(?m)^  "meta_sha256": "([0-9a-f]*)"`)

// ReadMeta reads and verifies bundle.json of the bundle in dir, and the checksum of every file
// it lists. An older or newer format, a missing file or a file whose content changed is an
// error that names it. dir may also be a stage directory (holding bundle/) or a run directory
// with exactly one bundle (see Resolve).
func ReadMeta(dir string) (*Meta, string, error) {
	dir, err := Resolve(dir)
	if err != nil {
		return nil, "", err
	}
	raw, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", dir, err)
	}
	var probe struct {
		Format        string `json:"format"`
		FormatVersion int    `json:"format_version"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, "", fmt.Errorf("%s/%s is damaged (not valid JSON: %v); the bundle cannot be trusted: retrain, or restore it from a copy", dir, MetaFile, err)
	}
	if probe.Format != Format {
		return nil, "", fmt.Errorf("%s/%s is not a pipe bundle (format %q)", dir, MetaFile, probe.Format)
	}
	if probe.FormatVersion < 1 || probe.FormatVersion > Version {
		return nil, "", fmt.Errorf("%s: bundle format version %d, this pipe reads versions 1 to %d; use the pipe version that wrote it, or retrain with this one", dir, probe.FormatVersion, Version)
	}
	m := &Meta{}
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, "", fmt.Errorf("%s/%s is damaged: %v", dir, MetaFile, err)
	}
	if probe.FormatVersion >= 2 {
		if err := verify(dir, raw, m); err != nil {
			return nil, "", err
		}
	}
	return m, dir, nil
}

// verify checks bundle.json's own checksum and every listed file's.
func verify(dir string, raw []byte, m *Meta) error {
	loc := metaSumRE.FindSubmatchIndex(raw)
	if loc == nil || m.MetaSHA256 == "" {
		return fmt.Errorf("%s/%s has no checksum of its own; the bundle cannot be verified: retrain, or restore it from a copy", dir, MetaFile)
	}
	blank := append(append([]byte(nil), raw[:loc[2]]...), raw[loc[3]:]...)
	// The checksum was taken with the field empty, and an empty field is omitted.
	blank = bytes.Replace(blank, []byte(",\n  \"meta_sha256\": \"\""), nil, 1)
	sum := sha256.Sum256(blank)
	if hex.EncodeToString(sum[:]) != m.MetaSHA256 {
		return fmt.Errorf("%s/%s was changed after it was written (its checksum does not match); the bundle cannot be trusted: retrain, or restore it from a copy", dir, MetaFile)
	}
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		path := filepath.Join(dir, filepath.FromSlash(n))
		got, err := fileSHA256(path)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("bundle %s: file %s is missing; the bundle is incomplete: retrain, or restore it from a copy", dir, n)
		}
		if err != nil {
			return fmt.Errorf("bundle %s: %w", dir, err)
		}
		if got != m.Files[n] {
			return fmt.Errorf("bundle %s: file %s was changed or damaged after it was written (its SHA-256 does not match bundle.json); the bundle cannot be trusted: retrain, or restore it from a copy", dir, n)
		}
	}
	return nil
}

// Resolve finds the bundle a path means: the bundle directory itself, a stage directory
// holding bundle/, or a run directory (holding manifest.json) with exactly one bundle under
// stages/. Several bundles in a run, or none, is an error that lists what there is.
func Resolve(path string) (string, error) {
	if isBundle(path) {
		return path, nil
	}
	if sub := filepath.Join(path, "bundle"); isBundle(sub) {
		return sub, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is a file, not a bundle directory; a bundle is the directory stages/<train stage>/bundle of a run", path)
	}
	if _, err := os.Stat(filepath.Join(path, "manifest.json")); err == nil {
		found, _ := filepath.Glob(filepath.Join(path, "stages", "*", "bundle", MetaFile))
		switch len(found) {
		case 0:
			return "", fmt.Errorf("run %s has no model bundle (no stage wrote stages/<name>/bundle)", path)
		case 1:
			return filepath.Dir(found[0]), nil
		}
		var rel []string
		for _, f := range found {
			r, _ := filepath.Rel(path, filepath.Dir(f))
			rel = append(rel, r)
		}
		return "", fmt.Errorf("run %s has %d model bundles (%s); name one of them", path, len(found), names.List(rel, 20))
	}
	return "", fmt.Errorf("%s is not a pipe bundle (no %s); a bundle is the directory stages/<train stage>/bundle of a run", path, MetaFile)
}

func isBundle(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, MetaFile))
	return err == nil && st.Mode().IsRegular()
}

// Load reads a bundle written by a train, ensemble or combine stage, verifying every file, and
// rebuilds its preprocessing chain with dec. The result is a *Bundle or an *EnsembleBundle.
func Load(dir string, dec *Decoders) (Predictor, error) {
	m, dir, err := ReadMeta(dir)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Meta: *m, Dir: dir}
	if err := b.decodePre(dec); err != nil {
		return nil, err
	}
	if m.Kind == "ensemble" {
		return loadEnsemble(b)
	}
	if b.Model, err = nn.Load(filepath.Join(dir, m.ModelDir)); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	return b, nil
}

// LoadModel reads a single-model bundle's network and description, verifying every file, but
// not its preprocessing chain (Pre stays nil): for transfer learning and summaries, which
// need no transform decoders.
func LoadModel(dir string) (*Bundle, error) {
	m, dir, err := ReadMeta(dir)
	if err != nil {
		return nil, err
	}
	if m.Kind == "ensemble" {
		return nil, fmt.Errorf("%s is an ensemble bundle; take a single model's bundle (a train stage's)", dir)
	}
	b := &Bundle{Meta: *m, Dir: dir}
	if b.Model, err = nn.Load(filepath.Join(dir, m.ModelDir)); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	return b, nil
}

func (b *Bundle) decodePre(dec *Decoders) error {
	if dec == nil {
		return fmt.Errorf("bundle %s: no transform decoders given", b.Dir)
	}
	for i, p := range b.Meta.Preprocessing {
		state, err := os.ReadFile(filepath.Join(b.Dir, p.File))
		if err != nil {
			return fmt.Errorf("bundle %s: preprocessing step %d (%s): %w", b.Dir, i+1, p.Kind, err)
		}
		t, err := dec.Decode(p.Kind, state)
		if err != nil {
			return fmt.Errorf("bundle %s: preprocessing step %d (%s, fitted by stage %q): %w", b.Dir, i+1, p.Kind, p.Stage, err)
		}
		b.Pre = append(b.Pre, t)
	}
	return nil
}

// CheckInput reports every column the bundle needs that a raw input schema lacks, in one
// error.
func (b *Bundle) CheckInput(s *arrow.Schema) error {
	var missing []string
	for _, c := range b.Meta.Input {
		if s.FieldIndices(c.Name) == nil {
			missing = append(missing, c.Name)
		}
	}
	if len(missing) == 0 {
		return b.Meta.Plan.checkTensorFields(s)
	}
	have := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		have[i] = f.Name
	}
	e := &ColumnError{Msg: fmt.Sprintf("%d of the %d columns the model was trained on are missing: %s", len(missing), len(b.Meta.Input), names.List(missing, 20)),
		Hint: "the rows have: " + names.List(have, 20) + "; add the missing columns, with the names they had in training"}
	if len(missing) == 1 {
		e.Column = missing[0]
		if s := names.Suggest(missing[0], have); s != "" {
			e.Hint = fmt.Sprintf("the input has %q: is it the same column under another name? Rename it to %q", s, missing[0])
		}
	}
	for _, t := range b.Meta.Plan.Tensors {
		if slices.Contains(missing, t.Column) {
			e.Hint += fmt.Sprintf("; %q is an image the model reads as %s", t.Column, t.ShapeString())
		}
	}
	return e
}

// InputPlan implements Predictor.
func (b *Bundle) InputPlan() *InputPlan { return &b.Meta.Plan }

// PreSteps implements Predictor.
func (b *Bundle) PreSteps() []PreStep { return b.Meta.Preprocessing }

// Base implements Predictor.
func (b *Bundle) Base() *Bundle { return b }

// PreprocessFrom implements Predictor.
func (b *Bundle) PreprocessFrom(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, from int) (arrow.RecordBatch, error) {
	if len(b.Pre) != len(b.Meta.Preprocessing) {
		return nil, fmt.Errorf("bundle: the preprocessing chain was not loaded")
	}
	rec.Retain()
	for i := from; i < len(b.Pre); i++ {
		out, err := b.Pre[i].Apply(ctx, mem, rec)
		rec.Release()
		if err != nil {
			return nil, fmt.Errorf("preprocessing step %d (%s, fitted by stage %q): %w", i+1, b.Pre[i].Kind(), b.Meta.Preprocessing[i].Stage, err)
		}
		rec = out
	}
	return rec, nil
}

// Forward implements Predictor.
func (b *Bundle) Forward(x nn.Batch) (nn.Outputs, error) { return b.Model.Predict(x) }

// Clone implements Predictor: the weights are copied, the fitted transforms (safe for
// concurrent use) shared.
func (b *Bundle) Clone() (Predictor, error) {
	m, err := CloneModel(b.Model)
	if err != nil {
		return nil, err
	}
	c := *b
	c.Model = m
	return &c, nil
}

// TransferModel holds the weights a train stage's init_from copies, by layer name.
func (b *Bundle) TransferModel() *nn.Model { return b.Model }

// TransferLayers are the bundle's trunk layers (not its heads), bottom to top.
func (b *Bundle) TransferLayers() []nn.LayerSpec { return b.Model.Spec().Layers }
