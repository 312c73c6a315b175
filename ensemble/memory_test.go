package ensemble

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/nn/optim"
)

// TestBudgetNeverExceeded runs goroutines of random sizes through the budget and checks, with
// a counter of the bytes held, that the sum never exceeds the limit; an item larger than the
// limit must run alone.
func TestBudgetNeverExceeded(t *testing.T) {
	const limit = 100
	b := newBudget(limit)
	rng := rand.New(rand.NewPCG(1, 1))
	var mu sync.Mutex
	held, running, peak := int64(0), 0, int64(0)
	aloneViolated := false
	var wg sync.WaitGroup
	for i := 0; i < 60; i++ {
		est := int64(1 + rng.IntN(60))
		if i%15 == 7 {
			est = 250 // larger than the whole budget
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.acquire(context.Background(), est); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			held += b.charge(est)
			running++
			peak = max(peak, held)
			if est > limit && running > 1 {
				aloneViolated = true
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			if est > limit && running > 1 {
				aloneViolated = true
			}
			held -= b.charge(est)
			running--
			mu.Unlock()
			b.release(est)
		}()
	}
	wg.Wait()
	if peak > limit {
		t.Errorf("peak held %d bytes, budget %d", peak, limit)
	}
	if aloneViolated {
		t.Error("a member larger than the budget ran next to another one")
	}
	if n, _ := b.peaks(); n < 2 {
		t.Errorf("peak concurrency %d: the budget should let small items run together", n)
	}
}

func TestBudgetAcquireHonoursContext(t *testing.T) {
	b := newBudget(10)
	if err := b.acquire(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.acquire(ctx, 5); err == nil {
		t.Error("acquire succeeded on a full budget")
	}
}

// overlapCheck verifies from the members' recorded budget intervals that the members holding
// the budget at the same time never exceeded it.
func overlapCheck(t *testing.T, rep Report, limit int64) (maxTogether int) {
	t.Helper()
	for _, a := range rep.Members {
		var sum int64
		together := 0
		for _, b := range rep.Members {
			if b.Started <= a.Started && a.Started < b.Finished {
				sum += min(b.EstimatedBytes, limit)
				together++
				if b.Index != a.Index && (a.EstimatedBytes > limit || b.EstimatedBytes > limit) {
					t.Errorf("members %d and %d overlap although one exceeds the budget", a.Index, b.Index)
				}
			}
		}
		if sum > limit {
			t.Errorf("when member %d started, members estimated at %d bytes held a budget of %d", a.Index, sum, limit)
		}
		maxTogether = max(maxTogether, together)
	}
	return maxTogether
}

func TestTrainRespectsMemoryBudget(t *testing.T) {
	data := blobs(160, 6, 3, 9)
	trainSet, val := data.Subset(seq(0, 120)), data.Subset(seq(120, 160))
	small := smallMember(6, 3, testEpochs())
	big := smallMember(6, 3, testEpochs())
	big.Spec.Layers[0].Units = 256
	rows := MemoryRows{Train: 120, Val: 40, OOB: 45}
	estSmall, err := EstimateMemberBytes(small, rows)
	if err != nil {
		t.Fatal(err)
	}
	estBig, err := EstimateMemberBytes(big, rows)
	if err != nil {
		t.Fatal(err)
	}
	if estBig <= estSmall {
		t.Fatalf("estimates: 256 units %d bytes, 16 units %d bytes", estBig, estSmall)
	}
	cases := []struct {
		name   string
		budget int64
		warn   bool
	}{
		{"two_small_fit", 2*estSmall + estSmall/2, true}, // the big member exceeds it: alone
		{"big_fits", estBig + estSmall, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Members: 6, Specs: []Member{small, small, big}, Bootstrap: true, Workers: 4, MemoryBudget: tc.budget}
			_, rep, err := Train(context.Background(), cfg, trainSet, val, 3, Options{})
			if err != nil {
				t.Fatal(err)
			}
			together := overlapCheck(t, rep, tc.budget)
			warned := false
			for _, w := range rep.Warnings {
				warned = warned || strings.Contains(w, "exceed the memory budget")
			}
			if warned != tc.warn {
				t.Errorf("warnings %q: want a budget warning = %v", rep.Warnings, tc.warn)
			}
			if rep.PeakConcurrent > cfg.Workers {
				t.Errorf("peak %d members at once with %d workers", rep.PeakConcurrent, cfg.Workers)
			}
			t.Logf("budget %d: up to %d members overlapped (scheduler peak %d members, %d bytes)", tc.budget, together, rep.PeakConcurrent, rep.PeakEstimatedBytes)
		})
	}
}

// TestEstimateMemberBytes checks that the estimate covers the params four times over (value,
// gradient, two snapshots) plus Adam's two moments, and grows with what it should.
func TestEstimateMemberBytes(t *testing.T) {
	m := smallMember(10, 4, 1)
	rows := MemoryRows{Train: 1000, Val: 100}
	base, err := EstimateMemberBytes(m, rows)
	if err != nil {
		t.Fatal(err)
	}
	// Params: 10·16 + 16 + 16·4 + 4 = 244 floats, held 6 times (Adam) at 4 bytes.
	if lower := int64(4 * 244 * 6); base < lower {
		t.Errorf("estimate %d bytes below the params' %d", base, lower)
	}
	grow := []struct {
		name string
		edit func(*Member, *MemoryRows)
	}{
		{"wider", func(m *Member, _ *MemoryRows) { m.Spec.Layers[0].Units = 64 }},
		{"bigger_batch", func(m *Member, _ *MemoryRows) { m.Train.BatchSize = 512 }},
		{"more_val_rows", func(_ *Member, r *MemoryRows) { r.Val = 900 }},
		{"oob_rows", func(_ *Member, r *MemoryRows) { r.OOB = 400 }},
		{"ema", func(m *Member, _ *MemoryRows) { m.Train.EMADecay = 0.99 }},
	}
	for _, tc := range grow {
		t.Run(tc.name, func(t *testing.T) {
			mm, rr := m, rows
			mm.Spec.Layers = append([]nn.LayerSpec(nil), m.Spec.Layers...)
			tc.edit(&mm, &rr)
			got, err := EstimateMemberBytes(mm, rr)
			if err != nil {
				t.Fatal(err)
			}
			if got <= base {
				t.Errorf("estimate %d bytes, not above the base %d", got, base)
			}
		})
	}
	sgd := m
	sgd.Train.Optimizer = optim.Config{Name: optim.NameSGD}
	if got, _ := EstimateMemberBytes(sgd, rows); got >= base {
		t.Errorf("plain SGD estimate %d, want below Adam's %d (no moment buffers)", got, base)
	}
	bad := m
	bad.Spec.Heads = nil
	if _, err := EstimateMemberBytes(bad, rows); err == nil {
		t.Error("an invalid spec was estimated")
	}
}
