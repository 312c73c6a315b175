package stages

import (
	"encoding/json"
	"sync"

	"github.com/pipe-ml/pipe/pipeline"
)

// Leakage is the manifest's run-level "leakage" object: where every fitted statistic came
// from, whether any group crossed splits, and how many held-out rows duplicate training rows.
type Leakage struct {
	mu sync.Mutex
	// Fitted lists each fitted transform and the split of the table it was fitted on.
	Fitted []FittedAudit `json:"fitted"`
	// GroupBy is the split's group column ("" without group_by).
	GroupBy string `json:"group_by,omitempty"`
	// GroupOverlap is the number of groups found in more than one split: null without
	// group_by, 0 with it.
	GroupOverlap any `json:"group_overlap"`
	// DuplicateRowsAcrossSplits counts held-out rows that exactly equal a training row.
	DuplicateRowsAcrossSplits int `json:"duplicate_rows_across_splits"`
}

// FittedAudit is one fitted transform in the leakage audit.
type FittedAudit struct {
	Stage string `json:"stage"`
	Kind  string `json:"kind"`
	Table string `json:"table"`
	Split string `json:"split"`
}

// leakageOf returns the run's Leakage object, creating it.
func leakageOf(sc *pipeline.StageContext) *Leakage {
	return sc.RunInfoOrInit("leakage", func() any { return &Leakage{} }).(*Leakage)
}

func (l *Leakage) addFitted(a FittedAudit) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.Fitted = append(l.Fitted, a)
}

func (l *Leakage) setSplit(groupBy string, overlap any, dups int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.GroupBy, l.GroupOverlap, l.DuplicateRowsAcrossSplits = groupBy, overlap, dups
}

// MarshalJSON encodes the audit under its lock (the manifest is written while stages run).
func (l *Leakage) MarshalJSON() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	type plain struct {
		Fitted                    []FittedAudit `json:"fitted"`
		GroupBy                   string        `json:"group_by,omitempty"`
		GroupOverlap              any           `json:"group_overlap"`
		DuplicateRowsAcrossSplits int           `json:"duplicate_rows_across_splits"`
	}
	f := l.Fitted
	if f == nil {
		f = []FittedAudit{}
	}
	return json.Marshal(plain{f, l.GroupBy, l.GroupOverlap, l.DuplicateRowsAcrossSplits})
}
