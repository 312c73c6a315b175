package pretrain

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/nn/train"
)

// TestReviveDeadUnits kills one unit of each encoder layer (a bias so negative that it is
// zero on every row) and checks that exactly the dead units get fresh incoming weights and a
// zero bias, that every other weight is untouched, and that the revived units are alive.
func TestReviveDeadUnits(t *testing.T) {
	const rows, cols = 60, 10
	x, _ := lowRank(rows, cols, 8)
	data := train.Dataset{X: x, NumInputs: cols}
	enc, _, err := TrainAutoencoder(context.Background(), AutoencoderConfig{Encoder: encoderLayers(6, 4)}, data, train.Dataset{}, quietConfig(2, 1))
	mustNoErr(t, err)
	m := enc.Model()
	kill := map[string]int{"enc_1": 2, "enc_2": 1}
	for l, j := range kill {
		m.Param(l + "/b").Value[j] = -1e6
	}
	// Units that happen to be dead already are revived too: count them as the reference.
	before := paramCopy(m)
	got, err := ReviveDeadUnits(enc, data, rand.New(rand.NewPCG(1, 2)))
	mustNoErr(t, err)
	for l, j := range kill {
		if got[l] < 1 {
			t.Fatalf("revived %v, want the killed unit %d of %s among them", got, j, l)
		}
		w, b := m.Param(l+"/W"), m.Param(l+"/b")
		units := w.Shape[1]
		if b.Value[j] != 0 {
			t.Errorf("%s unit %d: bias %g after revival, want 0", l, j, b.Value[j])
		}
		changed := 0
		for i := range w.Shape[0] {
			if w.Value[i*units+j] != before[l+"/W"][i*units+j] {
				changed++
			}
		}
		if changed != w.Shape[0] {
			t.Errorf("%s unit %d: %d of %d incoming weights re-drawn", l, j, changed, w.Shape[0])
		}
	}
	total := 0
	for _, n := range got {
		total += n
	}
	diff := 0
	for name, v := range paramCopy(m) {
		for i := range v {
			if v[i] == before[name][i] {
				continue
			}
			if strings.HasSuffix(name, "/b") {
				if v[i] != 0 {
					t.Errorf("%s[%d] changed to %g: a revived unit's bias goes to 0, others stay", name, i, v[i])
				}
				continue
			}
			diff++
		}
	}
	// Each revived unit re-draws its fan-in weights (10 for enc_1, 6 for enc_2); nothing
	// else may change.
	if want := got["enc_1"]*cols + got["enc_2"]*6; diff != want {
		t.Errorf("%d weights changed, want %d for the %d revived units %v", diff, want, total, got)
	}
	// The revived units now pass something on.
	again, err := ReviveDeadUnits(enc, data, rand.New(rand.NewPCG(1, 3)))
	mustNoErr(t, err)
	if again["enc_1"] >= got["enc_1"] && got["enc_1"] > 0 {
		t.Errorf("after revival %v units of enc_1 are still dead (were %v)", again, got)
	}
}
