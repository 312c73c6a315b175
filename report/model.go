package report

import "time"

// The report's data model: everything report.html shows, aggregated in Go from a run
// directory (never raw rows beyond the worst-k), and embedded in the page as JSON for the
// page's script to draw. Its JSON form is what the golden test compares. Field names are the
// JSON keys; a nil slice or map is left out.

// FormatVersion is the version of the data model's JSON.
const FormatVersion = 1

// Report is one run's report.
type Report struct {
	FormatVersion int       `json:"format_version"`
	Run           Run       `json:"run"`
	Graph         Graph     `json:"graph"`
	Stages        []Stage   `json:"stages"`
	Generated     time.Time `json:"generated"` // left out of the golden comparison
}

// Run is the run's header.
type Run struct {
	Pipeline    string            `json:"pipeline"`
	RunID       string            `json:"run_id"`
	Status      string            `json:"status"`
	Error       string            `json:"error,omitempty"`
	Seed        uint64            `json:"seed"`
	ConfigHash  string            `json:"config_hash"`
	PipeVersion string            `json:"pipe_version"`
	StartedAt   time.Time         `json:"started_at"`
	Seconds     float64           `json:"seconds"`
	Warnings    []string          `json:"warnings,omitempty"`
	Leakage     map[string]any    `json:"leakage,omitempty"` // the manifest's run.leakage audit
	Durations   []StageDuration   `json:"durations"`
	Overrides   []string          `json:"overrides,omitempty"`
	Extra       map[string]string `json:"extra,omitempty"`
}

// StageDuration is one bar of the durations chart.
type StageDuration struct {
	Stage   string  `json:"stage"`
	Kind    string  `json:"kind"`
	Status  string  `json:"status"`
	Seconds float64 `json:"seconds"`
	Waited  float64 `json:"waited_seconds"`
	Cached  bool    `json:"cached,omitempty"`
}

// Graph is the stage DAG, laid out in layers (left to right) for a diagram drawn as SVG.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node is one stage in the DAG diagram.
type Node struct {
	Stage  string `json:"stage"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	Layer  int    `json:"layer"` // column, from the sources at 0
	Row    int    `json:"row"`   // position in its column
}

// Edge is an input reference between two stages.
type Edge struct {
	From string `json:"from"` // stage.port
	To   string `json:"to"`   // stage.field
}

// Stage is one stage's section. Only the parts its kind produces are set.
type Stage struct {
	Name     string             `json:"name"`
	Kind     string             `json:"kind"`
	Status   string             `json:"status"`
	Seconds  float64            `json:"seconds"`
	Cached   bool               `json:"cached,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Notes    []string           `json:"notes,omitempty"`
	Warnings []string           `json:"warnings,omitempty"` // highlighted (monitor, summary, dropped)

	Training   *Training   `json:"training,omitempty"`   // train, pretrain, pseudo_label
	Monitoring *Monitoring `json:"monitoring,omitempty"` // train with monitor on
	Summary    *Summary    `json:"summary,omitempty"`    // the model summary
	Evaluation []TableEval `json:"evaluation,omitempty"` // evaluate: one per model and table
	BiasVar    []BiasVar   `json:"bias_variance,omitempty"`
	Ensemble   *Ensemble   `json:"ensemble,omitempty"`
	Rounds     []Round     `json:"rounds,omitempty"` // pseudo_label
	Search     *Search     `json:"search,omitempty"` // search: its trials
}

// Series is a named line over a shared x.
type Series struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"` // NaN encoded as null in JSON by the builder
}

// Curve is one chart: x values and the lines drawn over them.
type Curve struct {
	Title  string    `json:"title"`
	XLabel string    `json:"x_label"`
	YLabel string    `json:"y_label"`
	X      []float64 `json:"x"`
	Series []Series  `json:"series"`
	LogY   bool      `json:"log_y,omitempty"`
	LogX   bool      `json:"log_x,omitempty"` // the LR range test's learning rates
	// Marks are vertical markers (the early-stopping point, the restored epoch) and Bands
	// horizontal ranges to shade (the 1e-3 band of update ratios).
	Marks []Mark `json:"marks,omitempty"`
	Bands []Band `json:"bands,omitempty"`
}

// Mark is a vertical marker at X.
type Mark struct {
	X     float64 `json:"x"`
	Label string  `json:"label"`
}

// Band is a horizontal band [Lo, Hi].
type Band struct {
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
	Label string  `json:"label"`
}

// Training is a training stage's curves: loss, main metric, learning rate per epoch, the LR
// range test when lr = "auto".
type Training struct {
	Curves    []Curve `json:"curves"`
	BestEpoch int     `json:"best_epoch,omitempty"`
	Epochs    int     `json:"epochs"`
	StoppedAt int     `json:"stopped_at,omitempty"`
	Partial   bool    `json:"partial,omitempty"`
	RangeTest *Curve  `json:"range_test,omitempty"`
}

// Monitoring is a training's monitor samples, per layer.
type Monitoring struct {
	Layers []LayerMonitor `json:"layers"`
}

// LayerMonitor is one layer's activation histograms over training (a heatmap: steps ×
// bins) and its scalar series.
type LayerMonitor struct {
	Layer     string      `json:"layer"`
	Steps     []float64   `json:"steps"`
	BinEdges  []float64   `json:"bin_edges,omitempty"`
	Histogram [][]float64 `json:"histogram,omitempty"` // [step][bin] shares
	Curves    []Curve     `json:"curves"`              // dead-ReLU share, gradient norm, update/param ratio with the 1e-3 band
	Warning   string      `json:"warning,omitempty"`
}

// Summary is the model summary table.
type Summary struct {
	Rows  []SummaryRow `json:"rows"`
	Total int          `json:"total"`
}

// SummaryRow is one layer of the summary.
type SummaryRow struct {
	Layer  string  `json:"layer"`
	Kind   string  `json:"kind"`
	Output string  `json:"output"`
	Params int     `json:"params"`
	Share  float64 `json:"share"`
}

// TableEval is one model scored on one table.
type TableEval struct {
	Model   string             `json:"model"` // the model's stage
	Table   string             `json:"table"`
	Head    string             `json:"head"`
	Task    string             `json:"task"` // classification, binary, regression
	Metrics map[string]float64 `json:"metrics"`
	// Classes: the confusion matrix (rows: true, columns: predicted), per-class precision,
	// recall, F1 and support, the reliability diagram; ROC and PR for binary tasks.
	Labels      []string    `json:"labels,omitempty"`
	Confusion   [][]int64   `json:"confusion,omitempty"`
	PerClass    []ClassStat `json:"per_class,omitempty"`
	Reliability *Curve      `json:"reliability,omitempty"`
	ROC         *Curve      `json:"roc,omitempty"`
	PR          *Curve      `json:"pr,omitempty"`
	// Regression: predicted against actual (a sample of at most 2,000 points) and the
	// residuals' histogram.
	Scatter   *Scatter `json:"scatter,omitempty"`
	Residuals *Curve   `json:"residuals,omitempty"`
	// Worst are the worst-k rows (the evaluate stage's Parquet file), as a table; Images,
	// when the input is image-shaped, the same rows as PNG data URIs.
	Worst  *Rows    `json:"worst,omitempty"`
	Images []string `json:"images,omitempty"`
}

// ClassStat is one class's scores.
type ClassStat struct {
	Label     string  `json:"label"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int64   `json:"support"`
}

// Scatter is a sample of (x, y) points.
type Scatter struct {
	XLabel string    `json:"x_label"`
	YLabel string    `json:"y_label"`
	X      []float64 `json:"x"`
	Y      []float64 `json:"y"`
}

// Rows is a small table for display.
type Rows struct {
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// BiasVar is the bias/variance/mismatch table of one model and head, with its diagnosis.
type BiasVar struct {
	Model     string             `json:"model"`
	Head      string             `json:"head"`
	Unit      string             `json:"unit"`
	Errors    map[string]float64 `json:"errors"` // per split
	Chance    map[string]float64 `json:"chance,omitempty"`
	Diagnosis []string           `json:"diagnosis"`
}

// Ensemble is an ensemble stage's members beside its combiners.
type Ensemble struct {
	Members   []Member           `json:"members"`
	Combiners map[string]float64 `json:"combiners,omitempty"` // combiner → val metric
	Metric    string             `json:"metric"`
	Diversity []float64          `json:"diversity,omitempty"`
	OOB       map[string]float64 `json:"oob,omitempty"`
}

// Member is one ensemble member.
type Member struct {
	Index        int     `json:"index"`
	Name         string  `json:"name"`
	ValMetric    float64 `json:"val_metric"`
	EpochsRun    int     `json:"epochs_run"`
	BestEpoch    int     `json:"best_epoch"`
	StoppedEarly bool    `json:"stopped_early,omitempty"`
	Dropped      bool    `json:"dropped,omitempty"`
	Restored     bool    `json:"restored,omitempty"`
}

// Round is one pseudo-label round.
type Round struct {
	Round          int     `json:"round"`
	Added          int     `json:"added"`
	MeanConfidence float64 `json:"mean_confidence,omitempty"`
	PseudoAccuracy float64 `json:"pseudo_accuracy,omitempty"`
	ValAccuracy    float64 `json:"val_accuracy"`
	Epochs         int     `json:"epochs"`
}

// Search is a search stage's trials, from its trials.csv and the manifest's info: when each
// trial ran and how it ended, how the best objective improved trial after trial, each
// parameter against the objective, the trials as parallel coordinates, and the region each
// zoom round sampled.
type Search struct {
	Objective string `json:"objective"` // the val metric that ranks the trials
	Maximize  bool   `json:"maximize,omitempty"`
	Best      int    `json:"best"` // the best trial's index
	// Params are the space's parameters, in the trials table's column order.
	Params []SearchParam `json:"params"`
	// Trials are every trial, by index.
	Trials []SearchTrial `json:"trials"`
	// BestSoFar has x = trial index and two series: each trial's objective (null for a failed
	// trial), and the best objective of the completed trials up to it (null before the first).
	BestSoFar Curve `json:"best_so_far"`
	// Effects are, per parameter, the objective of every trial that has the parameter
	// against its value.
	Effects []ParamEffect `json:"effects"`
	// Parallel is the trials as parallel coordinates.
	Parallel Parallel `json:"parallel"`
	// Rounds are the regions the zoom rounds sampled (round 0: the full space).
	Rounds []SearchRound `json:"rounds,omitempty"`
}

// SearchParam is one parameter of a search space.
type SearchParam struct {
	Name string `json:"name"`
	Dist string `json:"dist"` // uniform, log_uniform, int, log_int, choice
	// Lo and Hi bound a numeric parameter; Labels are a choice's values as the trials table
	// writes them, in the space's order.
	Lo     float64  `json:"lo"`
	Hi     float64  `json:"hi"`
	Labels []string `json:"labels,omitempty"`
}

// Log reports whether the parameter is sampled on a log scale (its axis is logarithmic).
func (p SearchParam) Log() bool { return p.Dist == "log_uniform" || p.Dist == "log_int" }

// SearchTrial is one trial.
type SearchTrial struct {
	Index  int    `json:"index"`
	Round  int    `json:"round"`
	Status string `json:"status"` // completed, pruned, failed
	// Objective is the trial's value (null for a failed trial).
	Objective *float64 `json:"objective"`
	EpochsRun int      `json:"epochs_run"`
	BestEpoch int      `json:"best_epoch,omitempty"`
	// Start is when the trial started, in seconds after its search started (in the run that
	// trained it: a resumed search's restored trials keep their first run's times), and
	// Seconds how long it ran.
	Start   float64 `json:"start"`
	Seconds float64 `json:"seconds"`
	// Params are the trial's values as the trials table writes them (a parameter whose
	// condition did not hold is absent).
	Params map[string]string `json:"params"`
	Error  string            `json:"error,omitempty"`
}

// ParamEffect is one parameter's values against the objective.
type ParamEffect struct {
	Param  string        `json:"param"`
	Points []EffectPoint `json:"points"`
}

// EffectPoint is one trial's value of a parameter and its objective. X is the value of a
// numeric parameter, or the index of a choice's value in SearchParam.Labels.
type EffectPoint struct {
	Trial     int     `json:"trial"`
	X         float64 `json:"x"`
	Objective float64 `json:"objective"`
	Status    string  `json:"status"`
}

// Parallel is the trials as parallel coordinates: one axis per parameter, then the
// objective's; every trial that did not fail is a line through its values.
type Parallel struct {
	Axes  []ParallelAxis `json:"axes"`
	Lines []ParallelLine `json:"lines"`
}

// ParallelAxis is one axis, from Lo to Hi (a choice's axis has its labels at 0, 1, ...).
type ParallelAxis struct {
	Name   string   `json:"name"`
	Lo     float64  `json:"lo"`
	Hi     float64  `json:"hi"`
	Log    bool     `json:"log,omitempty"`
	Labels []string `json:"labels,omitempty"`
}

// ParallelLine is one trial's values on the axes, in axis units (null where the trial lacks
// the parameter).
type ParallelLine struct {
	Trial  int        `json:"trial"`
	Status string     `json:"status"`
	Values []*float64 `json:"values"`
}

// SearchRound is the region one zoom round sampled: each numeric parameter's range and each
// choice's weights (in the order of its labels).
type SearchRound struct {
	Round   int                   `json:"round"`
	Ranges  map[string][2]float64 `json:"ranges,omitempty"`
	Weights map[string][]float64  `json:"weights,omitempty"`
}
