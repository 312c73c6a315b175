package stages

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/schema"
)

// TestBiasVarianceJudgesAgainstChance: a train error no better than the best constant guess
// is underfitting, never "all small", however small the gaps and the error itself.
func TestBiasVarianceJudgesAgainstChance(t *testing.T) {
	tr, dev, val, test := schema.SplitTrain, schema.SplitTrainDev, schema.SplitVal, schema.SplitTest
	cases := []struct {
		name          string
		errs, chance  splitError
		regression    bool
		want, notWant string
	}{
		{"classes_at_chance", splitError{tr: 0.03, val: 0.03, test: 0.03}, splitError{tr: 0.03, val: 0.03, test: 0.03}, false,
			"underfit (chance level): train error 0.0300 is no better than 0.0300", "all small"},
		{"classes_learned", splitError{tr: 0.01, dev: 0.012, val: 0.015}, splitError{tr: 0.3, dev: 0.3, val: 0.3}, false,
			"all small", "chance"},
		{"classes_just_above_chance", splitError{tr: 0.28, val: 0.285}, splitError{tr: 0.3, val: 0.3}, false, // removes 7% of the chance error
			"underfit (chance level)", "high bias"},
		{"classes_better_than_chance_but_biased", splitError{tr: 0.2, val: 0.21}, splitError{tr: 0.5, val: 0.5}, false,
			"high bias (underfit): train error 0.2000", "chance"},
		{"regression_at_chance", splitError{tr: 1.98, val: 2.01}, splitError{tr: 2, val: 2}, true,
			"underfit (chance level): train RMSE 1.9800 is no better than 2.0000, that of always predicting the mean (R² = 0)", "all small"},
		{"regression_learned", splitError{tr: 0.5, val: 0.52}, splitError{tr: 2, val: 2}, true, "all small", "chance"},
		{"no_train_val_at_chance", splitError{val: 0.5, test: 0.5}, splitError{val: 0.5, test: 0.5}, false,
			"chance level: val error 0.5000", "all small"},
		{"one_class_has_no_chance_level", splitError{tr: 0, val: 0}, splitError{tr: 0, val: 0}, false, "all small", "chance"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text, diag := biasVariance(tc.errs, tc.chance, "error", tc.regression)
			all := strings.Join(diag, "\n")
			if !strings.Contains(all, tc.want) || strings.Contains(all, tc.notWant) {
				t.Errorf("diagnosis %q: want %q and not %q", diag, tc.want, tc.notWant)
			}
			for s, c := range tc.chance {
				if _, scored := tc.errs[s]; scored && !strings.Contains(text, fmt.Sprintf("%.4f", c)) {
					t.Errorf("table lacks %s's chance error %.4f:\n%s", s, c, text)
				}
			}
		})
	}
}

// TestEvaluateCallsAConstantModelUnderfit: a model whose features are constant can only learn
// a constant: the majority class of a 97/3 target (error 0.03), or the mean of a regression
// target. The evaluate stage reports it as underfitting at chance level, with the chance
// errors it computed from the tables.
func TestEvaluateCallsAConstantModelUnderfit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target func(i int) string
		chance float64 // of each split (they hold the same values)
	}{
		{"classes", func(i int) string { return map[bool]string{true: "b", false: "a"}[i%100 < 3] }, 3.0 / 100},
		// 1.5..10.5 in every split: the RMSE of the mean is their population std.
		{"regression", func(i int) string { return fmt.Sprint(1.5 + float64(i%10)) }, popStd(1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var b strings.Builder
			b.WriteString("x,target,split\n")
			for i, split := range []string{"train", "val", "test"} {
				for j := 0; j < 100; j++ {
					fmt.Fprintf(&b, "1,%s,%s\n", tc.target(100*i+j), split)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "c.csv"), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			src := `
[pipeline]
seed = 2
[stages.load]
kind = "csv"
path = "c.csv"
[stages.split]
kind = "split"
input = "load"
split_column = "split"
[stages.model]
kind = "train"
train = "split.train"
val = "split.val"
target = "target"
features = ["x"]
layers = [ { dense = 4 } ]
epochs = 60
[stages.eval]
kind = "evaluate"
models = ["model.model"]
tables = ["split.train", "split.val", "split.test"]
worst_k = 0
`
			m, _, err := runTOML(t, dir, src)
			if err != nil {
				t.Fatal(err)
			}
			bv, _ := m.Stages["eval"].Info["bias_variance"].(map[string]any)
			if len(bv) != 1 {
				t.Fatalf("bias_variance %v: want one head", bv)
			}
			for head, v := range bv {
				rep, _ := v.(map[string]any)
				chance, _ := rep["chance"].(map[string]any)
				for _, s := range []string{"train", "val", "test"} {
					if c, _ := chance[s].(float64); !near(c, tc.chance, 1e-9) {
						t.Errorf("%s: chance error of %s %v, want %v", head, s, chance[s], tc.chance)
					}
				}
				diag := fmt.Sprint(rep["diagnosis"])
				if !strings.Contains(diag, "underfit (chance level)") || strings.Contains(diag, "all small") {
					t.Errorf("%s: diagnosis %s (errors %v): want underfit at chance level", head, diag, rep["errors"])
				}
			}
		})
	}
}

func near(a, b, tol float64) bool { return a-b <= tol && b-a <= tol }

func popStd(v ...float64) float64 {
	var mean, ss float64
	for _, x := range v {
		mean += x / float64(len(v))
	}
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss / float64(len(v)))
}
