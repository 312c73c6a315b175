package nn

import (
	"math"
	"strconv"
	"strings"
)

// Task inference limits: an integer target with at most MaxClassesForInference distinct
// values, which are also at most MaxClassShareForInference of the present rows, is
// classification.
const (
	MaxClassesForInference    = 20
	MaxClassShareForInference = 0.05
)

// InferredTask is the result of InferTask.
type InferredTask struct {
	Kind    string   // HeadSoftmax, HeadBinary or HeadRegression
	Classes []string // sorted distinct values for classification (label i = Classes[i])
	Reason  string   // the rule that decided, for logs and manifests
}

// InferTask decides the head kind of a target column given as strings (empty = missing), by
// this rule:
//
//  1. if override is non-empty it wins (softmax, binary, regression);
//  2. values that are not all numbers (strings, true/false) are classification;
//  3. integers with at most MaxClassesForInference (20) distinct values that are also at
//     most MaxClassShareForInference (5%) of the present rows are classification (a tiny
//     column of counts stays regression unless overridden);
//  4. anything else (fractional numbers, many distinct integers) is regression.
//
// Classification with exactly 2 classes gets a binary head, more a softmax head.
func InferTask(values []string, override string) InferredTask {
	distinct := map[string]bool{}
	present := 0
	numeric, integer := true, true
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		present++
		distinct[v] = true
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			numeric, integer = false, false
			continue
		}
		if f != math.Trunc(f) {
			integer = false
		}
	}
	classes := sortedClasses(distinct, numeric)
	classification := func(reason string) InferredTask {
		kind := HeadSoftmax
		if len(classes) == 2 {
			kind = HeadBinary
		}
		return InferredTask{Kind: kind, Classes: classes, Reason: reason}
	}
	switch override {
	case HeadSoftmax, HeadBinary:
		t := classification("overridden")
		t.Kind = override
		return t
	case HeadRegression:
		return InferredTask{Kind: HeadRegression, Reason: "overridden"}
	}
	switch {
	case !numeric:
		return classification("non-numeric values")
	case integer && len(distinct) <= MaxClassesForInference && float64(len(distinct)) <= MaxClassShareForInference*float64(present):
		return classification("few distinct integer values")
	case integer:
		return InferredTask{Kind: HeadRegression, Reason: "integer values, too many distinct for classes"}
	default:
		return InferredTask{Kind: HeadRegression, Reason: "fractional values"}
	}
}

// sortedClasses orders class values numerically when all are numbers, else lexically.
func sortedClasses(set map[string]bool, numeric bool) []string {
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	less := func(a, b string) bool {
		if numeric {
			fa, _ := strconv.ParseFloat(a, 64)
			fb, _ := strconv.ParseFloat(b, 64)
			return fa < fb
		}
		return a < b
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && less(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
