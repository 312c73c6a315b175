package ensemble

import (
	"math"
	"time"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/metrics"
	"github.com/pipe-ml/pipe/nn/train"
)

// Report describes a Train run.
type Report struct {
	// Members has one entry per member, in member order (dropped members included).
	Members []MemberReport
	// Kept members form the ensemble; Dropped failed under OnErrorDrop.
	Kept, Dropped int
	// Warnings are problems that did not stop training (a member larger than the memory
	// budget, a weight fit that did not converge, ...).
	Warnings []string
	// PeakConcurrent is the largest number of members that trained at the same time, and
	// PeakEstimatedBytes the largest sum of their estimates.
	PeakConcurrent     int
	PeakEstimatedBytes int64
	// OOB holds the out-of-bag predictions and score; nil when every member trained on every
	// row (no Bootstrap or Subsample).
	OOB *OOB
	// Combiners scores every combiner of every head on the validation set, against the best
	// single member (empty without validation rows). The weighted combiner is fitted on the
	// same rows, so its score there is optimistic.
	Combiners []CombinerScore
	// Diversity is, per head (in head order), the members' mean pairwise disagreement on the
	// validation set (see Ensemble.Diversity); NaN for regression heads or without validation
	// rows.
	Diversity []float64
	// WeightFits describes the weighted combiner's fit per head (in head order; zero when not
	// fitted).
	WeightFits []WeightFit
	// Seconds is the wall time of Train.
	Seconds float64
}

// MemberReport describes one member.
type MemberReport struct {
	Index int
	Name  string
	// TrainRows is the size of the member's sample (with repeats for a bootstrap),
	// UniqueRows the distinct rows in it, and OOBRows the rows it never saw.
	TrainRows, UniqueRows, OOBRows int
	// Features lists the numeric input columns the member uses (nil: all).
	Features []int
	// Spec is the member's model spec after Vary; LR, BatchSize and Optimizer its effective
	// training settings.
	Spec      nn.Spec
	LR        float64
	BatchSize int
	Optimizer string
	// Summary of the member's train.Result: Epochs is the number of epochs it ran, BestEpoch
	// (0-based) the epoch of its best early-stopping metric.
	Epochs, Steps, BestEpoch int
	Metric                   string
	BestMetric               float64
	StoppedEarly             bool
	CarvedValidation         bool
	// History is the member's per-epoch metrics (train.Result.History; what it ran before an
	// error, for a failed member).
	History train.History
	// Val holds the member's metrics on the validation set with train.History's keys
	// (accuracy and logloss, or rmse, mae and r2; "<head>/<key>" with several heads).
	Val map[string]float64
	// Err is the member's error (nil on success); Dropped reports that it was left out of the
	// ensemble.
	Err     error
	Dropped bool
	// Seconds is the member's wall time; EstimatedBytes its memory estimate
	// (EstimateMemberBytes). Started and Finished are offsets from the start of Train between
	// which the member held its share of the memory budget.
	Seconds           float64
	EstimatedBytes    int64
	Started, Finished time.Duration
	// Restored reports that the member was not trained by this Train but taken from the
	// record of an earlier one (Options.Restore), and ResumedFrom the number of epochs of
	// the checkpoint its training continued from (0: it trained from the start). Like the
	// timings, they describe how this Train ran, not what it produced.
	Restored    bool
	ResumedFrom int
}

// CombinerScore is one combiner's score on the validation set for one head.
type CombinerScore struct {
	Head     string
	Combiner string
	// Metric is "accuracy" for classification heads, "rmse" for regression heads.
	Metric string
	Score  float64
	// BestMember is the index of the member with the best score on the same rows, and
	// BestMemberScore its score.
	BestMember      int
	BestMemberScore float64
	// Gain is the improvement over the best member: Score − BestMemberScore for accuracy,
	// BestMemberScore − Score for rmse (positive: the combiner is better).
	Gain float64
}

// OOB holds the out-of-bag predictions: for every row of the training dataset that at least one
// kept member did not train on, the mean output of those members.
type OOB struct {
	// Rows are the base-matrix rows (train.Dataset.X row indices) of the out-of-bag rows, in
	// dataset order; Members is how many members left each one out.
	Rows    []int
	Members []int
	// NeverOOB counts the dataset rows that every kept member trained on (they have no
	// out-of-bag prediction).
	NeverOOB int
	Heads    []OOBHead
}

// OOBHead is one head's out-of-bag predictions and score.
type OOBHead struct {
	Name  string
	Width int
	// Pred is len(Rows)×Width: the members' mean probabilities or values.
	Pred []float32
	// Metric is "accuracy" or "rmse"; Score its value over the out-of-bag rows with a target.
	Metric string
	Score  float64
}

// headScore is the validation metric of a head's outputs.
func headScore(hs nn.HeadSpec, out []float32, labels []int32, values []float32) (string, float64) {
	if isClassification(hs) {
		return "accuracy", metrics.Accuracy(labels, out, headWidth(hs))
	}
	return "rmse", metrics.RMSE(values, out)
}

// better reports whether score a beats b under metric (NaN never beats anything).
func better(metric string, a, b float64) bool {
	if math.IsNaN(a) {
		return false
	}
	if math.IsNaN(b) {
		return true
	}
	if metric == "accuracy" {
		return a > b
	}
	return a < b
}

// headMetrics returns the metrics of every head's outputs, keyed as train.History.
func headMetrics(heads []nn.HeadSpec, out nn.Outputs, labels [][]int32, values [][]float32) map[string]float64 {
	dst := map[string]float64{}
	for h, hs := range heads {
		key := func(k string) string {
			if len(heads) > 1 {
				return hs.Name + "/" + k
			}
			return k
		}
		p := out.Heads[h]
		if isClassification(hs) {
			dst[key("accuracy")] = metrics.Accuracy(labels[h], p, headWidth(hs))
			dst[key("logloss")] = metrics.LogLoss(labels[h], p, headWidth(hs))
		} else {
			dst[key("rmse")] = metrics.RMSE(values[h], p)
			dst[key("mae")] = metrics.MAE(values[h], p)
			dst[key("r2")] = metrics.R2(values[h], p)
		}
	}
	return dst
}
