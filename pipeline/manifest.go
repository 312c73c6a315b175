package pipeline

import (
	"encoding/json"
	"time"
)

// ManifestVersion is the format version of manifest.json. It changes only when a field changes
// meaning or disappears; new fields may be added within a version.
const ManifestVersion = 1

// Run statuses, each with its own exit code of `pipe run` (see ExitCode).
const (
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusCanceled  = "canceled"
	StatusDegraded  = "degraded"
	// StatusPending is a stage that has not started; StatusSkipped one that never ran because
	// the run stopped first.
	StatusPending = "pending"
	StatusSkipped = "skipped"
)

// Exit codes of the pipe command.
const (
	ExitOK       = 0   // succeeded (or `pipe validate` found no problem)
	ExitFailed   = 1   // the run failed: a stage returned an error (data error, NaN loss, I/O...)
	ExitConfig   = 2   // usage or config error, or a refused run directory (RefusedError): nothing ran
	ExitDegraded = 3   // the run finished but dropped something (e.g. an ensemble member)
	ExitCanceled = 130 // interrupted by SIGINT, SIGTERM or SIGHUP
)

// ExitCode maps a run status to the documented exit code.
func ExitCode(status string) int {
	switch status {
	case StatusSucceeded:
		return ExitOK
	case StatusDegraded:
		return ExitDegraded
	case StatusCanceled:
		return ExitCanceled
	}
	return ExitFailed
}

// Manifest is manifest.json: what ran, with what, and how it ended. Its format is stable
// within ManifestVersion.
type Manifest struct {
	FormatVersion int               `json:"format_version"`
	Pipeline      string            `json:"pipeline"`
	Description   string            `json:"description,omitempty"`
	RunID         string            `json:"run_id"`
	Status        string            `json:"status"`
	Error         string            `json:"error,omitempty"`
	ExitCode      int               `json:"exit_code"`
	Seed          uint64            `json:"seed"`
	ConfigHash    string            `json:"config_hash"`
	ConfigFile    string            `json:"config_file"`
	Overrides     []string          `json:"overrides,omitempty"`
	Workers       int               `json:"workers"`
	MemoryBudget  int64             `json:"memory_budget_bytes"`
	PeakTableMem  int64             `json:"peak_table_memory_bytes"`
	GoVersion     string            `json:"go_version"`
	PipeVersion   string            `json:"pipe_version"`
	Modules       map[string]string `json:"modules,omitempty"`
	GEMM          string            `json:"gemm,omitempty"`
	StartedAt     time.Time         `json:"started_at"`
	// Resumptions lists each time the run was resumed (pipe run --resume) after it was
	// interrupted; StartedAt stays the first start, and Seconds is the last attempt's time.
	Resumptions []Resumption `json:"resumptions,omitempty"`
	// Store is where the run's stage store is (a directory or URL), when it has one.
	Store string `json:"store,omitempty"`
	// Remote says where the run ran when an engine spread it over other processes (pipe run
	// --engine temporal); nil for a run that ran here.
	Remote     *RemoteRun `json:"remote,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Seconds    float64    `json:"seconds"`
	// PID and Host are the process that ran (or runs) the run. While it runs, it rewrites
	// HeartbeatAt every HeartbeatSeconds; ReadRun uses them to tell a crashed run from a
	// running one.
	PID              int        `json:"pid"`
	Host             string     `json:"host"`
	HeartbeatAt      *time.Time `json:"heartbeat_at,omitempty"`
	HeartbeatSeconds float64    `json:"heartbeat_seconds,omitempty"`
	// Warnings are run-level problems that did not stop the run (more workers than cores, a
	// log file that could not be written).
	Warnings   []string                  `json:"warnings,omitempty"`
	Stages     map[string]*StageManifest `json:"stages"`
	StageOrder []string                  `json:"stage_order"`
	Dropped    []string                  `json:"dropped,omitempty"`
	Run        map[string]any            `json:"run,omitempty"`
}

// StageManifest is one stage's entry in the manifest.
type StageManifest struct {
	Kind   string `json:"kind"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Seconds is the stage's own time: from its start to its end, less the time it spent
	// waiting for an input (a table or artifact another stage had not produced yet), which is
	// WaitedSeconds.
	Seconds       float64               `json:"seconds"`
	WaitedSeconds float64               `json:"waited_seconds,omitempty"`
	RowsIn        int64                 `json:"rows_in"`
	RowsOut       int64                 `json:"rows_out"`
	Batches       int                   `json:"batches"`
	Outputs       map[string]OutputInfo `json:"outputs"`
	Metrics       map[string]float64    `json:"metrics"`
	Info          map[string]any        `json:"info,omitempty"`
	Notes         []string              `json:"notes,omitempty"`
	Dropped       []string              `json:"dropped,omitempty"`
	// CacheKey is the stage's content key in the stage store: a hash of its kind and kind
	// version, pipe's version, its resolved config, its inputs' keys and its seed (and, for a
	// source, the identity of its data). Cached says the stage did not run: its outputs were
	// read back from the store under CacheKey.
	CacheKey string `json:"cache_key,omitempty"`
	Cached   bool   `json:"cached,omitempty"`
	// Attempts lists every attempt of a stage that declares retries, failed ones first.
	Attempts []Attempt `json:"attempts,omitempty"`
	// Remote is how the stage ran on the engine that spread the run (Manifest.Remote).
	Remote *RemoteStage `json:"remote,omitempty"`
}

// Attempt is one try of a stage that declares retries.
type Attempt struct {
	StartedAt time.Time `json:"started_at"`
	Seconds   float64   `json:"seconds"`
	Error     string    `json:"error,omitempty"` // empty for the attempt that succeeded
}

// OutputInfo describes one output port after the stage ran.
type OutputInfo struct {
	Kind    string `json:"kind"`
	Rows    int64  `json:"rows,omitempty"`
	Batches int    `json:"batches,omitempty"`
	Split   string `json:"split,omitempty"`
	Spilled bool   `json:"spilled,omitempty"`
	Type    string `json:"artifact,omitempty"`
}

// ReadManifest decodes a manifest.json.
func ReadManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
