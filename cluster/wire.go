package cluster

import "github.com/pipe-ml/pipe/pipeline"

// Names in Temporal.
const (
	// WorkflowName is the workflow type of a pipe run.
	WorkflowName = "pipe.run"
	// QueryProgress is the query that returns a running workflow's Progress.
	QueryProgress = "progress"

	activityPlan   = "pipe.plan"
	activityStage  = "pipe.stage"
	activityRecord = "pipe.record"
	activityReady  = "pipe.ready"

	// DefaultTaskQueue is the task queue of pipe's workflows and activities.
	DefaultTaskQueue = "pipe"
)

// RunInput is the workflow's input: references and small settings only. The pipeline itself
// is in the stage store under ConfigKey.
type RunInput struct {
	RunID      string   `json:"run_id"`
	Pipeline   string   `json:"pipeline"`
	ConfigKey  string   `json:"config_key"`
	ConfigFile string   `json:"config_file,omitempty"`
	ConfigDir  string   `json:"config_dir,omitempty"`
	Overrides  []string `json:"overrides,omitempty"`
	// Version and BuildID are the client's pipe build: every worker must be the same build,
	// or the stages' keys differ (the activities say so).
	Version  string   `json:"version,omitempty"`
	BuildID  string   `json:"build_id,omitempty"`
	DataDir  string   `json:"data_dir,omitempty"`
	NoCache  bool     `json:"no_cache,omitempty"`
	Refresh  []string `json:"refresh,omitempty"`
	Settings Settings `json:"settings"`
	// RecordDir, when set, makes the workflow's last activity write the run directory under
	// this runs directory (on the workers' shared filesystem): for runs that no client waits
	// for (scheduled, detached).
	RecordDir string `json:"record_dir,omitempty"`
	// Store names the stage store the client used, for messages.
	Store string `json:"store,omitempty"`
}

// StageTask is the input of a stage activity: run the stages Stages of the run together (or
// part Part of the one stage).
type StageTask struct {
	Run    RunInput `json:"run"`
	Stages []string `json:"stages"`
	Part   *int     `json:"part,omitempty"`
	// Keys are the stages' keys as planned: the worker checks that it computes the same.
	Keys []string `json:"keys"`
}

// ReadyTask is the input of the ready activity: which parts of the stepped stage Stage of the
// run can make progress now.
type ReadyTask struct {
	Run   RunInput `json:"run"`
	Stage string   `json:"stage"`
}

// ReadyResult is the ready activity's result (pipeline.ReadyParts).
type ReadyResult struct {
	Parts    []int `json:"parts,omitempty"`
	Finished int   `json:"finished"`
}

// StageOutcome is how one stage of an activity ended.
type StageOutcome struct {
	Status  string  `json:"status"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// StageResult is what a stage activity reports (also as the details of its error).
type StageResult struct {
	// Stages is each stage's outcome (not for a part).
	Stages  map[string]StageOutcome `json:"stages,omitempty"`
	Seconds float64                 `json:"seconds"`
	Worker  string                  `json:"worker"`
	Attempt int                     `json:"attempt"`
	// Resumed says what an attempt after the first continued from: the checkpoint named in
	// the last heartbeat of the attempt before, and the epoch the stage reports it resumed
	// at ("" and 0: it started from the beginning).
	Resumed      string `json:"resumed,omitempty"`
	ResumedEpoch int    `json:"resumed_epoch,omitempty"`
	// MaxPayloadBytes is the largest payload the worker has encoded or decoded so far.
	MaxPayloadBytes int `json:"max_payload_bytes,omitempty"`
}

// Plan is the plan activity's result.
type Plan struct {
	Stages []pipeline.StagePlan `json:"stages"`
}

// RunResult is the workflow's result (and the details of its error when it fails or is
// canceled).
type RunResult struct {
	Status          string                           `json:"status"`
	Error           string                           `json:"error,omitempty"`
	Stages          map[string]*pipeline.RemoteStage `json:"stages"`
	Order           []string                         `json:"order"`
	MaxPayloadBytes int                              `json:"max_payload_bytes,omitempty"`
	// RecordDir is the run directory the workflow wrote (RunInput.RecordDir), "" when none.
	RecordDir string `json:"record_dir,omitempty"`
}

// Progress is a running workflow's state, as the progress query returns it.
type Progress struct {
	Stages map[string]StageProgress `json:"stages"`
	Order  []string                 `json:"order"`
}

// StageProgress is one stage's state in Progress.
type StageProgress struct {
	Status string `json:"status"`
	Done   int    `json:"done,omitempty"`  // parts done
	Parts  int    `json:"parts,omitempty"` // parts in all
	Unit   string `json:"unit,omitempty"`  // what a part is: "members", "trials"
}

// heartbeat is an activity's heartbeat details.
type heartbeat struct {
	// Checkpoint is the store key of the last checkpoint the stage saved, Name its name.
	Checkpoint string `json:"checkpoint,omitempty"`
	Name       string `json:"name,omitempty"`
}

// maxErrorBytes caps an error message in a payload (a panic's stack can be long).
const maxErrorBytes = 4 << 10

func clip(s string) string {
	if len(s) <= maxErrorBytes {
		return s
	}
	return s[:maxErrorBytes] + "… (cut; the worker's log has all of it)"
}
