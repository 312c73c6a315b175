package runinfo

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// t0 is the start of the fixture runs.
var t0 = time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)

// fixtureRun is a run written into a runs directory by writeRun.
type fixtureRun struct {
	pipeline, id string
	m            *pipeline.Manifest
	raw          string // written as manifest.json instead of m when set
	config       string // pipeline.toml
	lockFile     bool   // a .lock file, not held
}

// writeRun writes f under root and returns its directory.
func writeRun(t *testing.T, root string, f fixtureRun) string {
	t.Helper()
	dir := filepath.Join(root, f.pipeline, f.id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	raw := []byte(f.raw)
	if f.m != nil {
		var err error
		if raw, err = json.MarshalIndent(f.m, "", "  "); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "manifest.json"), raw, 0o644))
	if f.config != "" {
		must(t, os.WriteFile(filepath.Join(dir, "pipeline.toml"), []byte(f.config), 0o644))
	}
	if f.lockFile {
		must(t, os.WriteFile(filepath.Join(dir, pipeline.LockFile), nil, 0o644))
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// manifest builds a finished manifest of pipeline name, started at start, that took secs.
func manifest(name, id, status string, start time.Time, secs float64, stages ...stage) *pipeline.Manifest {
	host, _ := os.Hostname()
	m := &pipeline.Manifest{FormatVersion: pipeline.ManifestVersion, Pipeline: name, RunID: id, Status: status,
		ExitCode: pipeline.ExitCode(status), Seed: 1, ConfigHash: "abc", PipeVersion: "devel", StartedAt: start,
		Seconds: secs, PID: os.Getpid(), Host: host, Stages: map[string]*pipeline.StageManifest{}}
	if status != pipeline.StatusRunning {
		end := start.Add(time.Duration(secs * float64(time.Second)))
		m.FinishedAt = &end
	}
	for _, s := range stages {
		m.StageOrder = append(m.StageOrder, s.name)
		m.Stages[s.name] = &pipeline.StageManifest{Kind: s.kind, Status: s.status, Metrics: s.metrics, Cached: s.cached, CacheKey: s.key}
	}
	return m
}

// stage is one stage of a fixture manifest.
type stage struct {
	name, kind, status string
	metrics            map[string]float64
	cached             bool
	key                string
}
