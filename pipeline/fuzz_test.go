package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config loader: it must return a pipeline or errors,
// never panic, and every error must be a *ConfigError with a file name.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/config/*.toml")
	for _, file := range files {
		b, _ := os.ReadFile(file)
		f.Add(b)
	}
	f.Add([]byte("[stages.a]\nkind = \"gen\"\nrows = 1\n[stages.b]\nkind = \"double\"\ninput = \"a.out\"\n"))
	reg := testRegistry()
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
