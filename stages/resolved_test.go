package stages

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
)

// TestResolvedConfigReloads: the resolved pipeline.toml that every run writes loads again as
// it is, and resolves to the same bytes (a fixpoint), for every shipped pipeline.
func TestResolvedConfigReloads(t *testing.T) {
	files, err := filepath.Glob("../pipelines/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example pipelines: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := pipeline.Load(f, registry(t), pipeline.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			again, err := pipeline.Parse(p.Resolved(), "pipeline.toml", filepath.Dir(f), registry(t), pipeline.LoadOptions{})
			if err != nil {
				t.Fatalf("the resolved config does not load again:\n%v\n%s", err, p.Resolved())
			}
			if !bytes.Equal(again.Resolved(), p.Resolved()) {
				t.Errorf("resolving the resolved config changed it:\n%s\nthen\n%s", p.Resolved(), again.Resolved())
			}
		})
	}
}
