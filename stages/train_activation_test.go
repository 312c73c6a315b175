package stages

import "testing"

// activationSrc trains a small conv net on digits' 8×8 images under a memory budget.
const activationSrc = `
[pipeline]
seed = 3
memory_budget = "1GiB"
[stages.load]
kind = "dataset"
name = "digits"
peer_split = true
[stages.split]
kind = "split"
input = "load"
split_column = "split"
[stages.model]
kind = "train"
train = "split.train"
val = "split.val"
target = "target"
image = true
layers = [ { conv = 8, kernel = 3, padding = "same" }, { batch_norm = true }, { max_pool = 2 }, { flatten = true } ]
batch_size = 32
epochs = 1
`

// TestTrainCountsActivationBuffers: the train stage counts its model's activation buffers
// against the run's memory budget next to its dense copies (info activation_bytes), so the
// run's peak of budgeted memory holds both. For this conv net the buffers are sized for the
// largest inference pass (the train-metric sample, all 1,257 training rows, under the 32 MiB
// inference chunk), so at least for the validation rows.
func TestTrainCountsActivationBuffers(t *testing.T) {
	m, _, err := runTOML(t, ".", activationSrc)
	if err != nil {
		t.Fatal(err)
	}
	info := m.Stages["model"].Info
	act := infoInt(t, info["activation_bytes"])
	dense := map[string]int64{}
	for _, role := range []string{"train", "val"} {
		v, ok := info["data_path_"+role].(map[string]any)
		if !ok {
			t.Fatalf("no data path for %s (info %v)", role, info)
		}
		dense[role] = infoInt(t, v["dense_bytes"])
	}
	// A dense row: 64 pixels, the _row id and one target (see denseBytes).
	valRows := dense["val"] / (64*4 + 8 + 8)
	// Every validation row's forward pass holds at least the conv output and batch norm's two
	// buffers, 8×8×8 float32 each.
	t.Logf("activation_bytes %d, %d validation rows, dense %v, peak %d", act, valRows, dense, m.PeakTableMem)
	if low := valRows * 3 * 512 * 4; act < low {
		t.Errorf("activation_bytes %d for %d validation rows, want at least %d", act, valRows, low)
	}
	if m.PeakTableMem < dense["train"]+dense["val"]+act {
		t.Errorf("peak budgeted memory %d bytes, below the dense copies' %d + %d and the activation buffers' %d", m.PeakTableMem, dense["train"], dense["val"], act)
	}
}

// infoInt reads an integer of a manifest's stage info (a JSON number).
func infoInt(t *testing.T, v any) int64 {
	t.Helper()
	f, ok := v.(float64)
	if !ok || f <= 0 {
		t.Fatalf("info value %v (%T): want a positive number", v, v)
	}
	return int64(f)
}
