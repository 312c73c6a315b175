package stages

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEnsembleRecordsMemberHistories: every member's per-epoch history is written to
// members/member_NN/history.csv, and the manifest lists each member's epochs_run and
// best_epoch, which agree with that file: a user sees which members early stopping cut short.
func TestEnsembleRecordsMemberHistories(t *testing.T) {
	src := strings.Replace(ensembleSrc, `member = { layers = [ { dense = 16 } ], epochs = 15 }`,
		`member = { layers = [ { dense = 16 } ], epochs = 200, optimizer = { lr = 0.05 }, early_stopping = { patience = 2 } }`, 1)
	m, dir, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stages["members"]
	list, _ := st.Info["members"].([]any)
	if len(list) != 4 {
		t.Fatalf("info.members %v: want 4 entries", st.Info["members"])
	}
	stopped := 0
	for i, e := range list {
		info, _ := e.(map[string]any)
		num := func(k string) int { v, _ := info[k].(float64); return int(v) }
		ran, best := num("epochs_run"), num("best_epoch")
		if info["stopped_early"] == true {
			stopped++
		}
		want := filepath.ToSlash(filepath.Join("members", fmt.Sprintf("member_%02d", i), "history.csv"))
		if info["history"] != want {
			t.Errorf("member %d: history %v, want %s", i, info["history"], want)
			continue
		}
		rows := readCSV(t, filepath.Join(dir, "stages", "members", want))
		if len(rows)-1 != ran || ran == 0 {
			t.Errorf("member %d: %d history rows, epochs_run %d", i, len(rows)-1, ran)
			continue
		}
		col := -1
		for j, h := range rows[0] {
			if h == "val_loss" {
				col = j
			}
		}
		if col < 0 || rows[0][0] != "epoch" {
			t.Fatalf("member %d: history header %v lacks epoch or val_loss", i, rows[0])
		}
		bestRow, bestLoss := 0, 0.0
		for r, row := range rows[1:] {
			v, err := strconv.ParseFloat(row[col], 64)
			if err != nil {
				t.Fatalf("member %d row %d: val_loss %q", i, r+1, row[col])
			}
			if r == 0 || v < bestLoss {
				bestRow, bestLoss = r+1, v
			}
		}
		if best != bestRow {
			t.Errorf("member %d: best_epoch %d, history's lowest val_loss is at epoch %d", i, best, bestRow)
		}
	}
	if stopped == 0 {
		t.Error("no member stopped early with patience 2 of 200 epochs: the test proves nothing")
	}
}
