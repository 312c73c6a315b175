package runinfo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
)

// StatusUnreadable is the status of a run whose manifest.json cannot be read or decoded (a
// damaged file, no permission); Run.Error says why. It is never written into a manifest.
const StatusUnreadable = "unreadable"

// Run is one run of a listing. Its JSON form is the element of `pipe runs --format json`.
type Run struct {
	// ID is the run's id (the manifest's run_id; the directory's name when the manifest
	// cannot be read).
	ID string `json:"id"`
	// Pipeline is the pipeline's name (the name of the directory that holds the run when the
	// manifest cannot be read).
	Pipeline string `json:"pipeline"`
	// Dir is the run directory, as found under the runs directory given to List.
	Dir string `json:"dir"`
	// Status is "succeeded", "failed", "canceled", "degraded", "running", "crashed" (the
	// manifest says running but its process is gone: pipeline.ReadRun) or "unreadable".
	Status string `json:"status"`
	// Error is the run's error (failed or canceled), or why its manifest is unreadable.
	Error string `json:"error,omitempty"`
	// StartedAt and FinishedAt are the manifest's; FinishedAt is absent while a run runs and
	// for a crashed run.
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Seconds is how long the run took; for a running run, how long it has run so far; for a
	// crashed run, up to its last heartbeat (see Seconds).
	Seconds float64 `json:"seconds"`
	// Stages is the number of stages, and Cached how many of them were read back from the
	// stage store instead of running.
	Stages int `json:"stages"`
	Cached int `json:"cached"`
	// Headline is the headline metric of every evaluate stage (see Headline); empty, never
	// null, when there is none.
	Headline []Metric `json:"headline"`

	sortTime time.Time // StartedAt, or the manifest file's time when it is unreadable
}

// Metric is one headline metric of an evaluate stage.
type Metric struct {
	// Stage is the evaluate stage.
	Stage string `json:"stage"`
	// Key is the metric's key in the stage's metrics: [<model>/][<task>/]<split>_<metric>.
	Key string `json:"key"`
	// Split is "test", or "val" when the stage scored no test table.
	Split string `json:"split"`
	// Metric is "accuracy" for a classification head, "r2" for a regression head.
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
}

// headlineChoices are the metrics Headline picks, in order of preference: a head has either
// accuracy (classes) or r2 (regression), and the test split is preferred to val.
var headlineChoices = []struct{ split, metric string }{
	{"test", "accuracy"}, {"test", "r2"}, {"val", "accuracy"}, {"val", "r2"},
}

// Headline returns the headline metric of every evaluate stage of m, in stage order: for each
// model and head the stage scored (the [<model>/][<task>/] prefix of its metric keys), the
// test accuracy for classes or the test R² for regression, or the val one when the stage
// scored no test table. R² rather than RMSE: it reads the same whatever the target's units.
func Headline(m *pipeline.Manifest) []Metric {
	out := []Metric{}
	for _, name := range stageOrder(m) {
		s := m.Stages[name]
		if s == nil || s.Kind != "evaluate" {
			continue
		}
		groups := map[string]bool{}
		for k := range s.Metrics {
			groups[k[:strings.LastIndex(k, "/")+1]] = true
		}
		prefixes := make([]string, 0, len(groups))
		for p := range groups {
			prefixes = append(prefixes, p)
		}
		sort.Strings(prefixes)
		for _, p := range prefixes {
			for _, c := range headlineChoices {
				key := p + c.split + "_" + c.metric
				if v, ok := s.Metrics[key]; ok {
					out = append(out, Metric{Stage: name, Key: key, Split: c.split, Metric: c.metric, Value: v})
					break
				}
			}
		}
	}
	return out
}

// stageOrder is m's stage order, followed by any stage the order lacks (sorted), so that a
// hand-edited or partial manifest loses nothing.
func stageOrder(m *pipeline.Manifest) []string {
	seen := map[string]bool{}
	var order []string
	for _, n := range m.StageOrder {
		if _, ok := m.Stages[n]; ok && !seen[n] {
			seen[n] = true
			order = append(order, n)
		}
	}
	var rest []string
	for n := range m.Stages {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(order, rest...)
}

// Seconds is how long the run of m has taken, given the status pipeline.ReadRun reported: the
// manifest's seconds for a finished run; for a running one, from its start to now; for a
// crashed one, from its start to its last heartbeat, the last time it was known alive (its
// manifest's seconds when it has no heartbeat).
func Seconds(m *pipeline.Manifest, status string, now time.Time) float64 {
	switch status {
	case pipeline.StatusRunning:
		if !m.StartedAt.IsZero() {
			return max(0, now.Sub(m.StartedAt).Seconds())
		}
	case pipeline.StatusCrashed:
		if m.HeartbeatAt != nil && !m.StartedAt.IsZero() {
			return max(0, m.HeartbeatAt.Sub(m.StartedAt).Seconds())
		}
	}
	return m.Seconds
}

// Summarize describes the run in dir from its manifest m and the status pipeline.ReadRun
// reported, measuring a running run's duration to now.
func Summarize(dir string, m *pipeline.Manifest, status string, now time.Time) Run {
	r := Run{
		ID: m.RunID, Pipeline: m.Pipeline, Dir: dir, Status: status, Error: m.Error,
		FinishedAt: m.FinishedAt, Seconds: Seconds(m, status, now),
		Stages: len(m.Stages), Headline: Headline(m), sortTime: m.StartedAt,
	}
	if r.ID == "" {
		r.ID = filepath.Base(dir)
	}
	if r.Pipeline == "" {
		r.Pipeline = filepath.Base(filepath.Dir(dir))
	}
	if !m.StartedAt.IsZero() {
		t := m.StartedAt
		r.StartedAt = &t
	}
	if status == pipeline.StatusCrashed {
		r.FinishedAt = nil
	}
	for _, s := range m.Stages {
		if s != nil && s.Cached {
			r.Cached++
		}
	}
	return r
}

// Read describes the run in dir. A manifest that cannot be read or decoded gives a Run with
// StatusUnreadable and the reason in Error, never an error.
func Read(dir string, now time.Time) Run {
	m, status, err := pipeline.ReadRun(dir)
	if err != nil {
		r := Run{ID: filepath.Base(dir), Pipeline: filepath.Base(filepath.Dir(dir)), Dir: dir,
			Status: StatusUnreadable, Error: err.Error(), Headline: []Metric{}}
		if fi, serr := os.Stat(filepath.Join(dir, "manifest.json")); serr == nil {
			r.sortTime = fi.ModTime()
		}
		return r
	}
	return Summarize(dir, m, status, now)
}

// ListOptions selects the runs List returns. The zero value lists every run.
type ListOptions struct {
	// Pipeline keeps only the runs of this pipeline: those whose manifest names it, and those
	// that lie in a directory of this name (root/<Pipeline>/..., which also holds runs whose
	// manifest cannot be read). Default "": every pipeline.
	Pipeline string
	// Limit keeps only the newest Limit runs when > 0. Default 0: all.
	Limit int
	// Now is the time a running run's duration is measured to. Default: the current time.
	Now time.Time
}

// List lists the runs under root (a runs directory: root/<pipeline>/<run-id>/, each a
// directory with a manifest.json), newest first (by start time; ties by id). Entries whose
// name starts with "." (the stage store runs/.store, lock files) and directories without a
// manifest.json (a run that has not written one yet) are not runs. A run directory or a
// pipeline directory that cannot be read is listed with StatusUnreadable.
//
// The error is only for root itself: it wraps fs.ErrNotExist when root does not exist.
func List(root string, opts ListOptions) ([]Run, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	pipes, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("runs directory %s: %w", root, err)
	}
	out := []Run{}
	for _, p := range pipes {
		if strings.HasPrefix(p.Name(), ".") || !isDir(root, p) {
			continue
		}
		pdir := filepath.Join(root, p.Name())
		ents, err := os.ReadDir(pdir)
		if err != nil {
			if opts.Pipeline == "" || opts.Pipeline == p.Name() {
				out = append(out, Run{ID: p.Name(), Pipeline: p.Name(), Dir: pdir, Status: StatusUnreadable,
					Error: fmt.Sprintf("cannot list the runs of %s: %v", pdir, err), Headline: []Metric{}})
			}
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") || !isDir(pdir, e) {
				continue
			}
			dir := filepath.Join(pdir, e.Name())
			if _, err := os.Lstat(filepath.Join(dir, "manifest.json")); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			r := Read(dir, now)
			if opts.Pipeline != "" && r.Pipeline != opts.Pipeline && p.Name() != opts.Pipeline {
				continue
			}
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.sortTime.Equal(b.sortTime) {
			return a.sortTime.After(b.sortTime)
		}
		if a.ID != b.ID {
			return a.ID > b.ID
		}
		return a.Dir < b.Dir
	})
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	return out, nil
}

// isDir reports whether the entry e of dir is a directory, following a symbolic link.
func isDir(dir string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	fi, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && fi.IsDir()
}
