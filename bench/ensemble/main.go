package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/datasets"
	"github.com/pipe-ml/pipe/ensemble"
	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/train"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ensemble bench:", err)
		os.Exit(1)
	}
}

// split is members trained at once × GEMM threads per member.
type split struct{ members, threads int }

func parseSplits(s string) ([]split, error) {
	var out []split
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(f), "x")
		m, err1 := strconv.Atoi(a)
		t, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || m < 1 || t < 1 {
			return nil, fmt.Errorf("-splits: %q is not MEMBERSxTHREADS (e.g. 2x1)", f)
		}
		out = append(out, split{m, t})
	}
	return out, nil
}

func run() error {
	name := flag.String("dataset", "mnist", "mnist or digits")
	limit := flag.Int("limit", 0, "use the first rows only (0: all)")
	members := flag.Int("members", 8, "ensemble members")
	epochs := flag.Int("epochs", 1, "epochs per member")
	hidden := flag.Int("hidden", 128, "units of the members' hidden layer")
	splits := flag.String("splits", "1x1,2x1,1x2", "members at once x GEMM threads per member, comma-separated")
	repeat := flag.Int("repeat", 3, "runs of each split (interleaved)")
	flag.Parse()
	sp, err := parseSplits(*splits)
	if err != nil {
		return err
	}
	data, val, classes, err := load(*name, *limit)
	if err != nil {
		return err
	}
	member := ensemble.Member{
		Spec: nn.Spec{NumInputs: data.NumInputs,
			Layers: []nn.LayerSpec{{Type: nn.LayerDense, Units: *hidden, Activation: "relu"}},
			Heads:  []nn.HeadSpec{{Name: "class", Kind: nn.HeadSoftmax, Classes: classes}}},
		Train: train.Config{Epochs: *epochs, BatchSize: 128, EarlyStopping: train.EarlyStopping{Disabled: true}},
	}
	fmt.Printf("# %s: %d training rows, %d val rows, %d inputs; %d members, MLP %d, %d epoch(s); GOMAXPROCS %d; load %s\n",
		*name, data.Len(), val.Len(), data.NumInputs, *members, *hidden, *epochs, runtime.GOMAXPROCS(0), loadAvg())
	times := make([][]float64, len(sp))
	cpus := make([][]float64, len(sp)) // the process's user + system CPU seconds
	var score float64
	for r := range *repeat {
		for i, s := range sp {
			cfg := ensemble.Config{Members: *members, Base: member, Bootstrap: true, Workers: s.members, MemberWorkers: s.threads}
			start, cpu0 := time.Now(), cpuSeconds()
			_, rep, err := ensemble.Train(context.Background(), cfg, data, val, 1, ensemble.Options{})
			if err != nil {
				return err
			}
			sec, cpu := time.Since(start).Seconds(), cpuSeconds()-cpu0
			times[i] = append(times[i], sec)
			cpus[i] = append(cpus[i], cpu)
			got := meanScore(rep)
			if r == 0 && i == 0 {
				score = got
			} else if got != score && !(math.IsNaN(got) && math.IsNaN(score)) {
				return fmt.Errorf("split %dx%d: mean-combiner val score %v, the first split's %v: results depend on the split", s.members, s.threads, got, score)
			}
			fmt.Printf("run %d split %dx%d: %.2f s wall, %.2f s CPU (load %s)\n", r+1, s.members, s.threads, sec, cpu, loadAvg())
		}
	}
	fmt.Printf("\n| members at once × GEMM threads | wall (s), %d runs | median (s) | speed-up over the first | CPU (s), median |\n|---|---|---|---|---|\n", *repeat)
	base := median(times[0])
	for i, s := range sp {
		var ts []string
		for _, t := range times[i] {
			ts = append(ts, fmt.Sprintf("%.2f", t))
		}
		fmt.Printf("| %d × %d | %s | **%.2f** | %.2f× | %.2f |\n", s.members, s.threads, strings.Join(ts, ", "), median(times[i]), base/median(times[i]), median(cpus[i]))
	}
	fmt.Printf("\nmean-combiner val score (identical for every split): %.5f\n", score)
	return nil
}

func meanScore(rep ensemble.Report) float64 {
	for _, c := range rep.Combiners {
		if c.Combiner == ensemble.CombinerMean {
			return c.Score
		}
	}
	return math.NaN()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuSeconds is the user and system CPU time the process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// load reads a dataset's pixels (scaled to [0, 1]) and labels; the shipped split's val rows
// (test rows, where there is no val) are the validation set, the train rows the bag's.
func load(name string, limit int) (train.Dataset, train.Dataset, int, error) {
	mem := memory.NewGoAllocator()
	r, err := datasets.Open(context.Background(), name, mem, datasets.Options{WithSplitColumn: true})
	if err != nil {
		return train.Dataset{}, train.Dataset{}, 0, err
	}
	defer r.Release()
	var x, vx []float32
	var y, vy []int32
	var inputs int
	maxV := float32(0)
	for r.Next() {
		rec := r.RecordBatch()
		var feats []func(int) float32
		var labels arrow.Array
		var splitCol *array.String
		for i, f := range rec.Schema().Fields() {
			switch {
			case f.Name == "target":
				labels = rec.Column(i)
			case f.Name == "split":
				splitCol, _ = rec.Column(i).(*array.String)
			default:
				switch c := rec.Column(i).(type) {
				case *array.Float32:
					feats = append(feats, c.Value)
				case *array.Float64:
					feats = append(feats, func(r int) float32 { return float32(c.Value(r)) })
				case *array.Int64:
					feats = append(feats, func(r int) float32 { return float32(c.Value(r)) })
				case *array.Uint8:
					feats = append(feats, func(r int) float32 { return float32(c.Value(r)) })
				}
			}
		}
		inputs = len(feats)
		if labels == nil || splitCol == nil || inputs == 0 {
			return train.Dataset{}, train.Dataset{}, 0, fmt.Errorf("%s: want numeric pixel columns, a target and a split column", name)
		}
		for row := range int(rec.NumRows()) {
			s := splitCol.Value(row)
			if s == "train" && limit > 0 && len(y) >= limit {
				continue
			}
			var lab int32
			switch l := labels.(type) {
			case *array.Int64:
				lab = int32(l.Value(row))
			case *array.Int32:
				lab = l.Value(row)
			default:
				return train.Dataset{}, train.Dataset{}, 0, fmt.Errorf("%s: target is %s, want an integer", name, labels.DataType())
			}
			dst := &x
			if s == "train" {
				y = append(y, lab)
			} else if s == "val" {
				dst = &vx
				vy = append(vy, lab)
			} else {
				continue
			}
			for _, c := range feats {
				v := c(row)
				*dst = append(*dst, v)
				maxV = max(maxV, v)
			}
		}
	}
	if err := r.Err(); err != nil {
		return train.Dataset{}, train.Dataset{}, 0, err
	}
	if maxV > 0 {
		for i := range x {
			x[i] /= maxV
		}
		for i := range vx {
			vx[i] /= maxV
		}
	}
	classes := 0
	for _, l := range append(slices.Clone(y), vy...) {
		classes = max(classes, int(l)+1)
	}
	d := train.Dataset{X: x, NumInputs: inputs, Targets: []train.Target{{Labels: y}}}
	v := train.Dataset{X: vx, NumInputs: inputs, Targets: []train.Target{{Labels: vy}}}
	return d, v, classes, nil
}
