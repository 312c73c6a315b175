package cluster

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Settings are the activity options of a run, from [pipeline.temporal] (see
// pipeline.PipelineFields) over the defaults of each kind.
type Settings struct {
	Default Activity            `json:"default"`
	Kinds   map[string]Activity `json:"kinds,omitempty"`
}

// Activity is how the activities of one kind of stage are run.
type Activity struct {
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout"`
	StageTimeout     time.Duration `json:"stage_timeout"`
	MaxAttempts      int           `json:"max_attempts"`
	RetryInterval    time.Duration `json:"retry_interval"`
}

// trainingKinds are the built-in kinds that train: their attempts may take long.
var trainingKinds = []string{"train", "ensemble", "search", "pretrain", "pseudo_label"}

// DefaultActivity is the default of every kind but the training ones (TrainingActivity).
var DefaultActivity = Activity{HeartbeatTimeout: 30 * time.Second, StageTimeout: 2 * time.Hour, MaxAttempts: 5, RetryInterval: time.Second}

// TrainingActivity is the default of the training kinds: train, ensemble, search, pretrain,
// pseudo_label.
var TrainingActivity = Activity{HeartbeatTimeout: 30 * time.Second, StageTimeout: 24 * time.Hour, MaxAttempts: 5, RetryInterval: time.Second}

// ParseSettings reads a pipeline's [pipeline.temporal] table (pipeline.Pipeline.Temporal, as
// validated by pipeline.Parse) over the defaults.
func ParseSettings(t map[string]any) Settings {
	s := Settings{Default: DefaultActivity, Kinds: map[string]Activity{}}
	for _, k := range trainingKinds {
		s.Kinds[k] = TrainingActivity
	}
	user := func(a Activity, tbl map[string]any) Activity {
		dur := func(key string, d *time.Duration) {
			if v, ok := tbl[key].(string); ok {
				if x, err := time.ParseDuration(v); err == nil && x > 0 {
					*d = x
				}
			}
		}
		dur("heartbeat_timeout", &a.HeartbeatTimeout)
		dur("stage_timeout", &a.StageTimeout)
		dur("retry_interval", &a.RetryInterval)
		if n, ok := tbl["max_attempts"].(int64); ok && n > 0 {
			a.MaxAttempts = int(n)
		}
		return a
	}
	if t == nil {
		return s
	}
	s.Default = user(s.Default, t)
	for k := range s.Kinds {
		s.Kinds[k] = user(s.Kinds[k], t)
	}
	kinds, _ := t["kinds"].(map[string]any)
	for kind, v := range kinds {
		tbl, _ := v.(map[string]any)
		base, ok := s.Kinds[kind]
		if !ok {
			base = s.Default
		}
		s.Kinds[kind] = user(base, tbl)
	}
	return s
}

// For returns the settings of a kind.
func (s Settings) For(kind string) Activity {
	if a, ok := s.Kinds[kind]; ok {
		return a
	}
	return s.Default
}

// Error types of pipe's activities. A stage's own failure is not retried by Temporal (the
// stage's retries key does that, inside the activity); a lost worker or a timeout is.
const (
	ErrTypeStageFailed = "pipe.StageFailed"
	ErrTypeSetup       = "pipe.Setup" // a worker that cannot run the activity as asked (config, build, store)
)

func (a Activity) options() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: a.StageTimeout,
		HeartbeatTimeout:    a.HeartbeatTimeout,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        a.RetryInterval,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        int32(a.MaxAttempts),
			NonRetryableErrorTypes: []string{ErrTypeStageFailed, ErrTypeSetup},
		},
	}
}
