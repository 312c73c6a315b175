package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
)

// cpuSrc has every stage that computes on the run's CPU budget: train, ensemble, pretrain and
// pseudo_label. %[2]s is the compute stages' own workers setting ("" for the default).
const cpuSrc = `
[pipeline]
seed = 5
workers = %d
[stages.load]
kind = "dataset"
name = "iris"
[stages.split]
kind = "split"
input = "load"
[stages.few]
kind = "mask_labels"
input = "split.train"
per_class = 10
val_per_class = 5
[stages.scale]
kind = "normalize"
fit = "few.train"
apply = ["few.train", "few.val"]
[stages.sup]
kind = "train"
train = "scale.train"
val = "scale.val"
layers = [ { dense = 8 } ]
epochs = 2
%[2]s
[stages.ens]
kind = "ensemble"
train = "scale.train"
val = "scale.val"
members = 2
member = { layers = [ { dense = 8 } ], epochs = 1 }
%[2]s
[stages.pre]
kind = "pretrain"
input = "scale.train"
layers = [ { dense = 4 } ]
epochs = 1
%[2]s
[stages.pseudo]
kind = "pseudo_label"
model = "sup.model"
train = "scale.train"
val = "scale.val"
rounds = 1
epochs = 1
%[2]s
`

// TestComputeStagesTakeCPUFromTheBudget: with [pipeline] workers = 1, and with a stage's own
// workers = 1 in a larger budget, every compute stage trains with exactly one worker (GEMM
// threads, or ensemble members at a time), as recorded in its info.
func TestComputeStagesTakeCPUFromTheBudget(t *testing.T) {
	for _, c := range []struct {
		pipelineWorkers int
		stageWorkers    string
	}{
		{1, ""},
		{4, "workers = 1"},
	} {
		t.Run(fmt.Sprintf("pipeline_%d/%s", c.pipelineWorkers, c.stageWorkers), func(t *testing.T) {
			m, _, err := runTOML(t, ".", fmt.Sprintf(cpuSrc, c.pipelineWorkers, c.stageWorkers))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"sup", "ens", "pre", "pseudo"} {
				if got := m.Stages[name].Info["workers"]; got != 1.0 {
					t.Errorf("stage %s: trained with %v workers, want 1", name, got)
				}
			}
		})
	}
	// With the default (0: the whole budget) and a budget of 2, a stage takes 1 or 2.
	m, _, err := runTOML(t, ".", fmt.Sprintf(cpuSrc, 2, ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sup", "ens", "pre", "pseudo"} {
		if got, _ := m.Stages[name].Info["workers"].(float64); got < 1 || got > 2 {
			t.Errorf("stage %s: trained with %v workers in a budget of 2", name, m.Stages[name].Info["workers"])
		}
	}
}

// countingCPU is a fake CPU budget that records how many tokens are held.
type countingCPU struct {
	mu   sync.Mutex
	held int
}

func (c *countingCPU) take(_ context.Context, want int) (int, func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held += want
	var once sync.Once
	return want, func() {
		once.Do(func() {
			c.mu.Lock()
			c.held -= want
			c.mu.Unlock()
		})
	}, nil
}

func (c *countingCPU) holding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held
}

// TestCSVSourceHoldsCPUUntilParsed: the CSV source's parser tokens stay taken while the file
// is parsed, and are given back when the reader ends, or when it is released early.
func TestCSVSourceHoldsCPUUntilParsed(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	path := filepath.Join(dir, "d.csv")
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "%d,%d.5\n", i, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src := &fileSource{path: path, opts: tableio.CSVOptions{BatchRows: 100}}
	cpu := &countingCPU{}
	r, err := src.openReader(context.Background(), mem, cpu.take)
	if err != nil {
		t.Fatal(err)
	}
	if cpu.holding() == 0 {
		t.Fatal("the tokens were given back when the file was opened, before parsing")
	}
	rows := 0
	for r.Next() {
		if cpu.holding() == 0 {
			t.Fatalf("the tokens were given back after %d rows, before the end", rows)
		}
		rows += int(r.RecordBatch().NumRows())
	}
	if err := r.Err(); err != nil || rows != 1000 {
		t.Fatalf("%d rows, %v", rows, err)
	}
	if cpu.holding() != 0 {
		t.Error("the tokens are still held after the end of the file")
	}
	r.Release()
	if cpu.holding() != 0 {
		t.Error("Release gave the tokens back twice")
	}
	// Released before the end.
	r, err = src.openReader(context.Background(), mem, cpu.take)
	if err != nil {
		t.Fatal(err)
	}
	r.Next()
	r.Release()
	if cpu.holding() != 0 {
		t.Error("the tokens are still held after an early Release")
	}
}

// TestRobustNormalizeTakesCPUFromTheBudget: a robust normalize, whose fit selects quantiles
// on several goroutines, takes them from the budget: one with [pipeline] workers = 1.
func TestRobustNormalizeTakesCPUFromTheBudget(t *testing.T) {
	src := "[pipeline]\nworkers = 1\n[stages.load]\nkind = \"dataset\"\nname = \"wine\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
		"[stages.scale]\nkind = \"normalize\"\nfit = \"split.train\"\nmethod = \"robust\"\n"
	m, _, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Stages["scale"].Info["workers"]; got != 1.0 {
		t.Errorf("robust normalize fitted with %v workers, want 1", got)
	}
}
