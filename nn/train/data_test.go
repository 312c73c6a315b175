package train

import (
	"bytes"
	"encoding/csv"
	"math"
	"strconv"
	"testing"

	"github.com/pipe-ml/pipe/datasets"
)

// split is one shipped dataset split into train/val/test Datasets, features standardised with
// training-set statistics.
type split struct {
	train, val, test Dataset
	numInputs        int
	classes          int     // for classification (labels 0..classes-1)
	yMean, yStd      float64 // regression target standardisation (train only)
}

// loadSplit parses an embedded dataset. Classification targets become labels; for regression
// the target is standardised with the training mean and std.
func loadSplit(t *testing.T, name string, regression bool) split {
	t.Helper()
	raw, err := datasets.CSV(name)
	if err != nil {
		t.Fatal(err)
	}
	which, err := datasets.SplitColumn(name)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	recs = recs[1:]
	if len(recs) != len(which) {
		t.Fatalf("%s: %d rows, %d split entries", name, len(recs), len(which))
	}
	nf := len(recs[0]) - 1
	rows := map[string][][]float64{}
	ys := map[string][]float64{}
	for i, rec := range recs {
		f := make([]float64, nf)
		for j := 0; j < nf; j++ {
			if rec[j] == "" {
				f[j] = math.NaN()
				continue
			}
			if f[j], err = strconv.ParseFloat(rec[j], 64); err != nil {
				t.Fatalf("%s row %d col %d: %v", name, i, j, err)
			}
		}
		y, err := strconv.ParseFloat(rec[nf], 64)
		if err != nil {
			t.Fatalf("%s row %d target: %v", name, i, err)
		}
		rows[which[i]] = append(rows[which[i]], f)
		ys[which[i]] = append(ys[which[i]], y)
	}
	// Train-only standardisation (a missing value becomes the mean, 0).
	mean, std := make([]float64, nf), make([]float64, nf)
	for j := 0; j < nf; j++ {
		var s, n float64
		for _, r := range rows["train"] {
			if !math.IsNaN(r[j]) {
				s += r[j]
				n++
			}
		}
		mean[j] = s / n
		var ss float64
		for _, r := range rows["train"] {
			if !math.IsNaN(r[j]) {
				ss += (r[j] - mean[j]) * (r[j] - mean[j])
			}
		}
		std[j] = math.Sqrt(ss / n)
		if std[j] == 0 {
			std[j] = 1
		}
	}
	sp := split{numInputs: nf}
	if regression {
		var s float64
		for _, y := range ys["train"] {
			s += y
		}
		sp.yMean = s / float64(len(ys["train"]))
		var ss float64
		for _, y := range ys["train"] {
			ss += (y - sp.yMean) * (y - sp.yMean)
		}
		sp.yStd = math.Sqrt(ss / float64(len(ys["train"])))
	} else {
		for _, y := range ys["train"] {
			sp.classes = max(sp.classes, int(y)+1)
		}
	}
	build := func(part string) Dataset {
		d := Dataset{NumInputs: nf}
		for _, r := range rows[part] {
			for j, v := range r {
				if math.IsNaN(v) {
					v = mean[j]
				}
				d.X = append(d.X, float32((v-mean[j])/std[j]))
			}
		}
		var tg Target
		for _, y := range ys[part] {
			if regression {
				tg.Values = append(tg.Values, float32((y-sp.yMean)/sp.yStd))
			} else {
				tg.Labels = append(tg.Labels, int32(y))
			}
		}
		d.Targets = []Target{tg}
		return d
	}
	sp.train, sp.val, sp.test = build("train"), build("val"), build("test")
	return sp
}
