package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/pretrain"
)

// This file is what the stage store's cache needs of the built-in kinds: the identity of the
// data the sources read, the loaders of their artifacts from a stage directory, and what a
// cached stage redoes beyond its outputs (the run's leakage audit).

const (
	augmentKindName = "augment"
	// fFingerprint is the file sources' choice of data identity.
	fFingerprint = "fingerprint"
	// bundleDir, transformFile and encoderDir are where the stages that output artifacts save
	// them in their directory, and where the loaders read them back.
	bundleDir     = "bundle"
	transformFile = "transform.json"
	encoderDir    = "encoder"
	// encoderPlanFile, in encoderDir, is the input plan an encoder was trained on.
	encoderPlanFile = "plan.json"
)

func fingerprintField() pipeline.Field {
	return pipeline.Field{Name: fFingerprint, Type: pipeline.TypeString, Default: "stat", Enum: []string{"stat", "content"},
		Doc: "How the stage store's cache knows that the file changed: `stat` (its path, size and modification time: free, but a touched file counts as changed) " +
			"or `content` (the SHA-256 of its bytes, read at the start of every run: a file touched, or written again with the same bytes, keeps its cached results)."}
}

// fileFingerprint is the identity of a file source's data: FileIdentity of its path, by stat
// or by content as its fingerprint field says.
func fileFingerprint(ctx context.Context, c *pipeline.StageConfig, _ pipeline.FingerprintEnv) (string, error) {
	return pipeline.FileIdentity(ctx, c.Path("path"), c.String(fFingerprint) == "content")
}

// datasetFingerprint is the identity of a built-in dataset's data: nothing beyond its name
// and pipe's version (both in the key) for an embedded one; for MNIST, the identity (path, size,
// modification time) of the idx files it is read from.
func datasetFingerprint(ctx context.Context, c *pipeline.StageConfig, env pipeline.FingerprintEnv) (string, error) {
	if c.String("name") != "mnist" {
		return "", nil
	}
	dir, err := datasets.MNISTDir(env.DataDir)
	if err != nil {
		return "", err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*-ubyte.gz"))
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	var ids []string
	for _, f := range files {
		id, err := pipeline.FileIdentity(ctx, f, false)
		if err != nil {
			return "", err
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, ","), nil
}

// decodeAugmentSpec reads an AugmentSpec back from its Marshal output.
func decodeAugmentSpec(state []byte) (*AugmentSpec, error) {
	var a AugmentSpec
	dec := json.NewDecoder(bytes.NewReader(state))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("augment: saved spec: %w", err)
	}
	return &a, nil
}

// artifactLoaders read the built-in kinds' artifacts back from their stage directory, where
// the stage saved them: a model bundle or an ensemble in bundle/, a fitted transform in
// transform.json, an encoder in encoder/ (with its input plan). Bundles read their
// preprocessing with d.
func artifactLoaders(d *bundle.Decoders) map[string]pipeline.ArtifactLoader {
	loadBundle := func(kind string) pipeline.ArtifactLoader {
		return func(_ context.Context, dir string) (pipeline.Artifact, error) {
			p, err := bundle.Load(filepath.Join(dir, bundleDir), d)
			if err != nil {
				return nil, err
			}
			a, ok := p.(pipeline.Artifact)
			if !ok || a.ArtifactKind() != kind {
				return nil, fmt.Errorf("%s holds no %s bundle", filepath.Join(dir, bundleDir), kind)
			}
			return a, nil
		}
	}
	return map[string]pipeline.ArtifactLoader{
		"bundle":   loadBundle("bundle"),
		"ensemble": loadBundle("ensemble"),
		"transform": func(_ context.Context, dir string) (pipeline.Artifact, error) {
			b, err := os.ReadFile(filepath.Join(dir, transformFile))
			if err != nil {
				return nil, err
			}
			t, err := features.Unmarshal(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, transformFile), err)
			}
			return TransformArtifact{t}, nil
		},
		"encoder": func(_ context.Context, dir string) (pipeline.Artifact, error) {
			enc, err := pretrain.LoadEncoder(filepath.Join(dir, encoderDir))
			if err != nil {
				return nil, err
			}
			path := filepath.Join(dir, encoderDir, encoderPlanFile)
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			a := &EncoderArtifact{Enc: enc}
			if err := json.Unmarshal(b, &a.Plan); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return a, nil
		},
	}
}

// restoredFitted adds a cached fit stage's entry to the run's leakage audit, from its
// restored info.fitted_on.
func restoredFitted(kind string) func(sc *pipeline.StageContext) error {
	return func(sc *pipeline.StageContext) error {
		on, _ := sc.Info("fitted_on").(map[string]any)
		table, _ := on["table"].(string)
		split, _ := on["split"].(string)
		leakageOf(sc).addFitted(FittedAudit{Stage: sc.Name, Kind: kind, Table: table, Split: split})
		return nil
	}
}

// restoredSplit sets the run's leakage audit from a cached split stage's restored metrics.
func restoredSplit(sc *pipeline.StageContext) error {
	groupBy := sc.Config.String("group_by")
	var overlap any
	if groupBy != "" {
		v, _ := sc.Metrics.Get("group_overlap")
		overlap = int(v)
	}
	dups, _ := sc.Metrics.Get("duplicate_rows_across_splits")
	leakageOf(sc).setSplit(groupBy, overlap, int(dups))
	return nil
}
