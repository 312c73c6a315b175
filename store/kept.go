package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pipe-ml/pipe/pipeline"
)

// KeptKeys returns the cache keys that the runs under runsDirs refer to: every stage's
// cache_key in every manifest.json of a run directory. A run directory is any directory that
// holds a manifest.json (runs/<pipeline>/<run-id>/, or a run written with --out); its
// subdirectories are not searched further, nor are hidden directories (".store"). A directory
// in runsDirs that does not exist, or a manifest that cannot be read, is an error: gc must not
// take a mistyped directory or a damaged manifest for runs that refer to nothing.
func KeptKeys(runsDirs ...string) (map[string]bool, error) {
	kept := map[string]bool{}
	for _, root := range runsDirs {
		st, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("runs directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("runs directory %s is not a directory", root)
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				return nil
			}
			if path != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			manifest := filepath.Join(path, "manifest.json")
			b, err := os.ReadFile(manifest)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			m, err := pipeline.ReadManifest(b)
			if err != nil {
				return fmt.Errorf("%s: %w (a run's manifest that cannot be read may refer to entries of the store: repair it, or remove the run directory)", manifest, err)
			}
			for _, s := range m.Stages {
				if s != nil && s.CacheKey != "" {
					kept[s.CacheKey] = true
				}
			}
			return filepath.SkipDir
		})
		if err != nil {
			return nil, fmt.Errorf("reading the runs under %s: %w", root, err)
		}
	}
	return kept, nil
}
