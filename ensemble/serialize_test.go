package ensemble

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	data := blobs(160, 5, 3, 12)
	val := data.Subset(seq(120, 160))
	ens, _, err := Train(context.Background(), bagConfig(5, 3, 3), data.Subset(seq(0, 120)), val, 4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ens.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Names(), ens.Names()) {
		t.Errorf("names %v, want %v", back.Names(), ens.Names())
	}
	vb := batchOf(val)
	for _, c := range ens.CombinerNames("out") {
		t.Run(c, func(t *testing.T) {
			want, err := ens.Predict(vb, c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := back.Predict(vb, c)
			if err != nil {
				t.Fatal(err)
			}
			if !bitsEqual(got.Heads[0], want.Heads[0]) {
				t.Error("loaded ensemble predicts differently")
			}
		})
	}
	// A manifest pointing outside the directory is refused.
	bad := `{"format_version": 1, "members": [{"name": "x", "dir": "../elsewhere"}]}`
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Error("a member directory outside the ensemble directory was accepted")
	}
}
