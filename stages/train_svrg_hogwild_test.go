package stages

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
)

const svrgHead = "[pipeline]\nseed = 1\n[stages.load]\nkind = \"dataset\"\nname = \"breast_cancer\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
	"[stages.scale]\nkind = \"normalize\"\nfit = \"split.train\"\n"

// TestTrainStageSVRG: optimizer = { name = "svrg" } trains through the stage, deterministically
// across worker counts, and history.csv has the gradient-evaluation count.
func TestTrainStageSVRG(t *testing.T) {
	src := svrgHead + "[stages.m]\nkind = \"train\"\ntrain = \"scale.train\"\nlayers = []\nepochs = 3\nearly_stopping = false\n" +
		"optimizer = { name = \"svrg\", inner = \"sgd\", snapshot_epochs = 1, lr = 0.1 }\nschedule = { name = \"step\", step_epochs = 2 }\nclip = { norm = 5.0 }\n"
	var losses []float64
	for _, workers := range []string{"1", "2"} {
		m, runDir, err := runTOML(t, ".", src, "m.workers="+workers)
		if err != nil {
			t.Fatal(err)
		}
		hist, err := os.ReadFile(filepath.Join(runDir, "stages", "m", "history.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.SplitN(string(hist), "\n", 2)[0], "grad_evals") {
			t.Fatalf("history.csv header lacks grad_evals: %q", strings.SplitN(string(hist), "\n", 2)[0])
		}
		losses = append(losses, m.Stages["m"].Metrics["val_loss"])
	}
	if losses[0] != losses[1] || losses[0] == 0 {
		t.Fatalf("val_loss with 1 and 2 workers: %v", losses)
	}
}

// TestTrainStageHogwild: hogwild trains and says in the manifest that the run is not
// reproducible bit for bit.
func TestTrainStageHogwild(t *testing.T) {
	src := svrgHead + "[stages.m]\nkind = \"train\"\ntrain = \"scale.train\"\nlayers = [{ dense = 8 }]\nepochs = 30\n" +
		"optimizer = { name = \"sgd\", lr = 0.1 }\nhogwild = { threads = 2 }\n"
	m, _, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(m.Stages["m"].Notes, "\n")
	if !strings.Contains(notes, "not reproducible bit for bit") || !strings.Contains(notes, "2 threads") {
		t.Fatalf("notes lack the hogwild warning: %q", notes)
	}
	if acc := m.Stages["m"].Metrics["val_accuracy"]; acc < 0.8 {
		t.Fatalf("hogwild val_accuracy %v < 0.8 on breast_cancer", acc)
	}
}

// TestTrainStageSVRGHogwildConfigErrors: settings that cannot work are config errors naming the
// stage and the key.
func TestTrainStageSVRGHogwildConfigErrors(t *testing.T) {
	base := svrgHead + "[stages.m]\nkind = \"train\"\ntrain = \"scale.train\"\nepochs = 1\n"
	for _, tc := range []struct {
		name, extra, key, want string
	}{
		{"hogwild_adam", "hogwild = { threads = 2 }\n", "hogwild", "optimizer adam"},
		{"hogwild_batch_norm", "optimizer = { name = \"sgd\" }\nlayers = [{ dense = 8 }, { batch_norm = true }]\nhogwild = { threads = 2 }\n", "hogwild", "layers[1] (batch normalisation)"},
		{"hogwild_ema", "optimizer = { name = \"sgd\" }\nema = 0.99\nhogwild = { threads = 2 }\n", "hogwild", "EMA"},
		{"hogwild_momentum", "optimizer = { name = \"sgd\", momentum = 0.9 }\nhogwild = { threads = 2 }\n", "hogwild", "momentum"},
		{"hogwild_zero_threads", "optimizer = { name = \"sgd\" }\nhogwild = { threads = 0 }\n", "hogwild.threads", "minimum 1"},
		{"hogwild_unknown_key", "optimizer = { name = \"sgd\" }\nhogwild = { thread = 2 }\n", "hogwild", "thread"},
		{"inner_without_svrg", "optimizer = { name = \"adam\", inner = \"sgd\" }\n", "optimizer.inner", "svrg"},
		{"snapshot_without_svrg", "optimizer = { name = \"sgd\", snapshot_epochs = 2 }\n", "optimizer.snapshot_epochs", "svrg"},
		{"svrg_inner_svrg", "optimizer = { name = \"svrg\", inner = \"svrg\" }\n", "optimizer.inner", "svrg"},
		{"svrg_snapshot_zero", "optimizer = { name = \"svrg\", snapshot_epochs = 0 }\n", "optimizer.snapshot_epochs", "1"},
		{"beta1_decay_without_linear", "optimizer = { name = \"adam\", beta1_decay = 0.5 }\n", "optimizer.beta1_decay", "linear"},
		{"beta1_decay_cosine", "optimizer = { name = \"adam\", beta1_decay = 0.5 }\nschedule = { name = \"cosine\" }\n", "optimizer.beta1_decay", "cosine"},
		{"beta1_decay_sgd", "optimizer = { name = \"sgd\", beta1_decay = 0.5 }\nschedule = { name = \"linear\" }\n", "optimizer", "adam and adamw only"},
		{"beta1_decay_range", "optimizer = { name = \"adam\", beta1_decay = 1.5 }\nschedule = { name = \"linear\" }\n", "optimizer.beta1_decay", "1"},
		{"beta1_decay_typo", "optimizer = { name = \"adam\", beta1_decy = 0.5 }\n", "optimizer", "beta1_decay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pipeline.Parse([]byte(base+tc.extra), "test.toml", ".", registry(t), pipeline.LoadOptions{})
			if err == nil {
				t.Fatal("want a config error")
			}
			msg := err.Error()
			if !strings.Contains(msg, `stage "m"`) || !strings.Contains(msg, tc.key) || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q: want stage \"m\", key %s and %q", msg, tc.key, tc.want)
			}
		})
	}
}

// TestTrainStageHogwildRefusesAugmentedTable: a train table that comes through an augment
// stage is refused at the hogwild key, naming the augment stage, before any training.
func TestTrainStageHogwildRefusesAugmentedTable(t *testing.T) {
	src := svrgHead + "[stages.aug]\nkind = \"augment\"\ninput = \"scale.train\"\nnoise = 0.1\n" +
		"[stages.m]\nkind = \"train\"\ntrain = \"aug\"\nlayers = [{ dense = 8 }]\nepochs = 2\n" +
		"optimizer = { name = \"sgd\", lr = 0.1 }\nhogwild = { threads = 2 }\n"
	_, _, err := runTOML(t, ".", src)
	ces := pipeline.ConfigErrors(err)
	if len(ces) != 1 || ces[0].Key != "hogwild" || !strings.Contains(ces[0].Error(), "augmentation (aug)") {
		t.Fatalf("got %v, want one config error at hogwild naming the augment stage", err)
	}
}

// TestTrainStageLinearSchedule: schedule = { name = "linear", decay_start } reaches the trainer:
// the rate in history.csv is the base for the first decay_start epochs, then falls linearly to
// min_lr at the last planned epoch.
func TestTrainStageLinearSchedule(t *testing.T) {
	src := svrgHead + "[stages.m]\nkind = \"train\"\ntrain = \"scale.train\"\nlayers = []\nepochs = 6\nearly_stopping = false\n" +
		"optimizer = { name = \"sgd\", lr = 0.1 }\nschedule = { name = \"linear\", decay_start = 2, min_lr = 0.01 }\n"
	_, runDir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := os.ReadFile(filepath.Join(runDir, "stages", "m", "history.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// history.csv's lr is the epoch's last step's: a linear fall of (0.1-0.01)/(6-2) per epoch
	// from epoch 3 on, never reaching min_lr within the planned epochs.
	const base, minLR, perEpoch = 0.1, 0.01, (0.1 - 0.01) / 4
	lines := strings.Split(strings.TrimSpace(string(hist)), "\n")
	col := slices.Index(strings.Split(lines[0], ","), "lr")
	if col < 0 || len(lines) != 7 {
		t.Fatalf("history.csv: want an lr column and 6 epochs:\n%s", hist)
	}
	var lrs []float64
	for _, l := range lines[1:] {
		v, err := strconv.ParseFloat(strings.Split(l, ",")[col], 64)
		if err != nil {
			t.Fatal(err)
		}
		lrs = append(lrs, v)
	}
	if lrs[0] != base || lrs[1] != base {
		t.Errorf("lr of epochs 1-2 %v, want the base %v before decay_start", lrs[:2], base)
	}
	for i := 3; i < 6; i++ {
		if d := lrs[i-1] - lrs[i]; math.Abs(d-perEpoch) > 1e-9 {
			t.Errorf("lr falls by %v from epoch %d to %d, want %v (linear): %v", d, i, i+1, perEpoch, lrs)
		}
	}
	if lrs[2] >= base || lrs[5] <= minLR || lrs[5] > minLR+perEpoch {
		t.Errorf("lrs %v: want the decay to start in epoch 3 and end within one epoch of min_lr %v", lrs, minLR)
	}
}
