package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config loader (kinds with nested tables included): it
// must return a pipeline or errors, never panic, and every error must be a *ConfigError with a
// file name.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/config/*.toml")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Add([]byte("[stages.a]\nkind = \"gen\"\nrows = 1\n[stages.b]\nkind = \"double\"\ninput = \"a.out\"\n"))
	f.Add([]byte("[stages.n]\nkind = \"net\"\nlayers = [ { dense = 4 } ]\n[[stages.n.layers]]\ndense = 2\n[stages.n.optimizer]\nlr = \"auto\"\n"))
	reg := nestedRegistry(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.toml", ".", reg, LoadOptions{})
		if err != nil {
			errs := ConfigErrors(err)
			if len(errs) == 0 {
				t.Fatalf("error without a ConfigError: %v", err)
			}
			for _, e := range errs {
				if e.File == "" {
					t.Fatalf("error without a file: %v", e)
				}
			}
			return
		}
		if p == nil || len(p.Stages) == 0 {
			t.Fatal("no error and no stages")
		}
	})
}

// FuzzOverrides feeds arbitrary --set arguments to the loader: it must never panic, and every
// error must be a *ConfigError.
func FuzzOverrides(f *testing.F) {
	for _, s := range []string{"n.layers[1].dense=3", "n.optimizer.lr=abc", "a.rows=99999999999999999999", "pipeline.seed=1", "n.layers.dense=1", "n..x=1", "n.layers[-1]=2", "=", "n.tasks.a.weight=[1,2]"} {
		f.Add(s)
	}
	src := []byte("[stages.a]\nkind = \"gen\"\n[stages.n]\nkind = \"net\"\nlayers = [ { dense = 4 }, { dense = 2 } ]\noptimizer = { lr = 0.1 }\n")
	reg := nestedRegistry(f)
	f.Fuzz(func(t *testing.T, set string) {
		_, err := Parse(src, "fuzz.toml", ".", reg, LoadOptions{Overrides: []string{set}})
		if err != nil && len(ConfigErrors(err)) == 0 {
			t.Fatalf("error without a ConfigError: %v", err)
		}
	})
}
