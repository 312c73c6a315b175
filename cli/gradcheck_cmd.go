package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"github.com/pipe-ml/pipe/bundle"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/pipeline"
)

// gradcheckTolerance is the worst relative error a tensor may show. Central differences on a
// float32 network (step 1e-3) are good to a few percent; a wrong backward pass is off by
// O(1).
const gradcheckTolerance = 5e-2

var sourceKinds = map[string]bool{"dataset": true, "csv": true, "parquet": true, "arrow": true}

// cmdGradcheck checks the analytic gradients of the models of a pipeline (or of one bundle)
// against central finite differences, on a small batch.
func (a *app) cmdGradcheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("gradcheck", stderr)
	rows := fs.Int("rows", 8, "rows in the checked batch")
	var sets stringList
	fs.Var(&sets, "set", "override a key: stage.key=value (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: pipe gradcheck FILE|BUNDLE [--rows N] [--set stage.key=value]...")
		return pipeline.ExitConfig
	}
	target := pos[0]
	var bundles []string
	if st, err := os.Stat(target); err == nil && st.IsDir() {
		bundles = []string{target}
	} else {
		// Build the configured models by running the pipeline on a few rows for one epoch.
		p, code := a.load(target, sets, stderr)
		if code != 0 {
			return code
		}
		over := append([]string(nil), sets...)
		for _, s := range p.Stages {
			switch {
			case sourceKinds[s.Kind]:
				over = append(over, s.Name+".limit=300")
			case s.Kind == "train":
				over = append(over, s.Name+".epochs=1")
			}
		}
		if p, code = a.load(target, over, stderr); code != 0 {
			return code
		}
		dir, err := os.MkdirTemp("", "pipe-gradcheck-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return pipeline.ExitFailed
		}
		defer os.RemoveAll(dir)
		if _, err := pipeline.Run(context.Background(), p, pipeline.RunOptions{Dir: filepath.Join(dir, "run")}); err != nil {
			fmt.Fprintf(stderr, "pipe gradcheck: building the models: %v\n", err)
			return pipeline.ExitFailed
		}
		for _, s := range p.Stages {
			if s.Kind == "train" {
				bundles = append(bundles, filepath.Join(dir, "run", "stages", s.Name, "bundle"))
			}
		}
		if len(bundles) == 0 {
			fmt.Fprintln(stderr, "pipe gradcheck: the pipeline has no train stage")
			return pipeline.ExitConfig
		}
	}
	worst := 0.0
	for _, dir := range bundles {
		b, err := bundle.LoadModel(dir)
		if err != nil {
			fmt.Fprintf(stderr, "pipe gradcheck: %v\n", err)
			return pipeline.ExitFailed
		}
		res, err := gradcheckModel(b.Model, *rows)
		if err != nil {
			fmt.Fprintf(stderr, "pipe gradcheck: %v\n", err)
			return pipeline.ExitFailed
		}
		fmt.Fprintf(stdout, "model of stage %s (%d rows, central differences, tolerance %.0e)\n", b.Meta.Stage, *rows, gradcheckTolerance)
		w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "tensor\tworst rel. error\tcoord\tanalytic\tnumeric\tchecked\tkinks\t")
		for _, r := range res {
			mark := ""
			if r.RelError > gradcheckTolerance {
				mark = "FAIL"
			}
			worst = max(worst, r.RelError)
			fmt.Fprintf(w, "%s\t%.2e\t%d\t%.6g\t%.6g\t%d\t%d\t%s\n", r.Param, r.RelError, r.Coord, r.Analytic, r.Numeric, r.CoordsSeen-r.Kinks, r.Kinks, mark)
		}
		w.Flush()
	}
	if worst > gradcheckTolerance {
		fmt.Fprintf(stdout, "gradient check FAILED: worst relative error %.2e > %.0e\n", worst, gradcheckTolerance)
		return pipeline.ExitFailed
	}
	fmt.Fprintf(stdout, "gradient check passed: worst relative error %.2e\n", worst)
	return 0
}

// gradcheckModel checks m on a seeded random batch with random targets for every head.
func gradcheckModel(m *nn.Model, rows int) ([]nn.GradCheckResult, error) {
	spec := m.Spec()
	rng := rand.New(rand.NewPCG(1, 2))
	b := nn.Batch{Rows: rows, X: make([]float32, rows*spec.NumInputs)}
	for i := range b.X {
		b.X[i] = float32(rng.NormFloat64())
	}
	for _, e := range spec.Embeddings {
		col := make([]int32, rows)
		for i := range col {
			col[i] = int32(rng.IntN(e.Cardinality))
		}
		b.Cat = append(b.Cat, col)
	}
	var t nn.Targets
	for _, h := range m.Heads() {
		var ht nn.HeadTargets
		switch h.Kind {
		case nn.HeadSoftmax:
			for i := 0; i < rows; i++ {
				ht.Labels = append(ht.Labels, int32(rng.IntN(h.Classes)))
			}
		case nn.HeadBinary:
			for i := 0; i < rows; i++ {
				ht.Labels = append(ht.Labels, int32(rng.IntN(2)))
			}
		default:
			k := max(h.Outputs, 1)
			for i := 0; i < rows*k; i++ {
				ht.Values = append(ht.Values, float32(rng.NormFloat64()))
			}
		}
		t.Heads = append(t.Heads, ht)
	}
	res, err := nn.GradCheck(m, b, t, nn.GradCheckOptions{Seed: 3, Eps: 1e-3, MaxCoords: 48, SkipKinks: true})
	sort.SliceStable(res, func(i, j int) bool { return res[i].Param < res[j].Param })
	return res, err
}
