package ensemble

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pipe-ml/pipe/internal/atomicfile"
	"github.com/pipe-ml/pipe/nn"
)

// ManifestFile is the name of the ensemble's description inside a directory written by Save.
const ManifestFile = "ensemble.json"

// FormatVersion is the version of ensemble.json written by Save.
const FormatVersion = 1

// manifest is the content of ensemble.json.
type manifest struct {
	FormatVersion int                       `json:"format_version"`
	Members       []manifestMember          `json:"members"`
	Combiners     map[string][]CombinerSpec `json:"combiners"`
}

type manifestMember struct {
	Name string `json:"name"`
	Dir  string `json:"dir"` // relative to the ensemble directory
}

// Save writes the ensemble to dir (created if needed): every member model with nn's Save in
// dir/member_<i>, then ensemble.json (member names and directories, and every head's
// combiners in their serialisable form). Every file is written to a temporary name, synced
// and renamed; ensemble.json is written last, so a directory with an ensemble.json is whole.
func (e *Ensemble) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ensemble: save: %w", err)
	}
	man := manifest{FormatVersion: FormatVersion, Combiners: e.CombinerSpecs()}
	for i, m := range e.models {
		sub := fmt.Sprintf("member_%d", i)
		if err := m.Save(filepath.Join(dir, sub)); err != nil {
			return fmt.Errorf("ensemble: save member %d (%s): %w", i, e.names[i], err)
		}
		man.Members = append(man.Members, manifestMember{Name: e.names[i], Dir: sub})
	}
	js, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("ensemble: save: encode %s: %w", ManifestFile, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, ManifestFile), append(js, '\n')); err != nil {
		return fmt.Errorf("ensemble: save: %w", err)
	}
	return nil
}

// Load reads an ensemble written by Save: its member models (nn.Load) and combiners.
func Load(dir string) (*Ensemble, error) {
	path := filepath.Join(dir, ManifestFile)
	js, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ensemble: load: %w", err)
	}
	var man manifest
	if err := json.Unmarshal(js, &man); err != nil {
		return nil, fmt.Errorf("ensemble: load: %s: %w", path, err)
	}
	if man.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("ensemble: load: %s has format_version %d, this build reads %d", path, man.FormatVersion, FormatVersion)
	}
	models := make([]*nn.Model, len(man.Members))
	names := make([]string, len(man.Members))
	for i, mm := range man.Members {
		if !filepath.IsLocal(mm.Dir) {
			return nil, fmt.Errorf("ensemble: load: %s: member %d directory %q is not inside the ensemble directory", path, i, mm.Dir)
		}
		if models[i], err = nn.Load(filepath.Join(dir, mm.Dir)); err != nil {
			return nil, fmt.Errorf("ensemble: load member %d (%s): %w", i, mm.Name, err)
		}
		names[i] = mm.Name
	}
	e, err := New(models, names)
	if err != nil {
		return nil, fmt.Errorf("ensemble: load %s: %w", path, err)
	}
	for head, specs := range man.Combiners {
		for _, s := range specs {
			c, err := NewCombiner(s)
			if err != nil {
				return nil, fmt.Errorf("ensemble: load %s: head %q: %w", path, head, err)
			}
			if err := e.SetCombiner(head, c); err != nil {
				return nil, fmt.Errorf("ensemble: load %s: %w", path, err)
			}
		}
	}
	return e, nil
}
