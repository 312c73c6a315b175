package ensemble

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pipe-ml/pipe/nn/gemm"
	"github.com/pipe-ml/pipe/nn/train"
)

func TestMemberThreads(t *testing.T) {
	cases := []struct {
		workers, memberWorkers, members int
		want                            []int
	}{
		{16, 1, 8, []int{2, 2, 2, 2, 2, 2, 2, 2}},
		{2, 1, 1, []int{2}},
		{8, 1, 3, []int{3, 3, 2}},
		{2, 1, 8, []int{1, 1, 1, 1, 1, 1, 1, 1}},
		{4, 3, 2, []int{3, 3}},
		{4, 1, 0, []int{}},
	}
	for _, c := range cases {
		got := memberThreads(c.workers, c.memberWorkers, c.members)
		if !slices.Equal(got, c.want) {
			t.Errorf("memberThreads(%d, %d, %d) = %v, want %v", c.workers, c.memberWorkers, c.members, got, c.want)
		}
		if c.members > 0 && c.members < c.workers && c.memberWorkers == 1 {
			sum := 0
			for _, n := range got {
				sum += n
			}
			if sum != c.workers {
				t.Errorf("memberThreads(%d, 1, %d) uses %d threads, want all %d tokens", c.workers, c.members, sum, c.workers)
			}
		}
	}
}

// gemm.Parallel's product does not depend on its thread count: its row blocks depend on m only.
func TestParallelGEMMBitIdenticalAcrossThreads(t *testing.T) {
	const m, n, k = 1000, 37, 61
	a, b := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32((i*7919)%1013)/1013 - 0.5
	}
	for i := range b {
		b[i] = float32((i*104729)%997)/997 - 0.5
	}
	var ref []float32
	for _, w := range []int{1, 2, 3, 5, 16} {
		c := make([]float32, m*n)
		gemm.Parallel{Backend: gemm.Default(), Workers: w}.Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		if ref == nil {
			ref = c
			continue
		}
		for i := range c {
			if c[i] != ref[i] {
				t.Fatalf("workers %d: c[%d] = %v, with 1 worker %v", w, i, c[i], ref[i])
			}
		}
	}
}

// Two members on four CPU tokens train with two GEMM threads each, and the ensemble is bit for
// bit the one trained with one thread per member.
func TestSpareTokensBecomeGEMMThreads(t *testing.T) {
	data := blobs(240, 6, 3, 1)
	trainSet, val := data.Subset(seq(0, 180)), data.Subset(seq(180, 240))
	run := func(workers int) ([][][]float32, []int) {
		cfg := bagConfig(6, 3, 2)
		cfg.Workers, cfg.MemberWorkers = workers, 1
		var log bytes.Buffer
		ens, _, err := Train(context.Background(), cfg, trainSet, val, 77, Options{Logger: zerolog.New(zerolog.SyncWriter(&log)).Level(zerolog.DebugLevel)})
		if err != nil {
			t.Fatal(err)
		}
		var w [][][]float32
		for _, m := range ens.Models() {
			w = append(w, modelWeights(m))
		}
		// Each member's trainer logs its epochs with the member's GEMM threads.
		threads := make([]int, 2)
		dec := json.NewDecoder(&log)
		for dec.More() {
			var line struct {
				Member  *int `json:"member"`
				Threads int  `json:"gemm_threads"`
			}
			if err := dec.Decode(&line); err != nil {
				t.Fatal(err)
			}
			if line.Member != nil && line.Threads > 0 {
				threads[*line.Member] = line.Threads
			}
		}
		return w, threads
	}
	w1, t1 := run(1)
	w4, t4 := run(4)
	if !slices.Equal(t1, []int{1, 1}) || !slices.Equal(t4, []int{2, 2}) {
		t.Fatalf("GEMM threads: %v with 1 token, %v with 4; want [1 1] and [2 2]", t1, t4)
	}
	for i := range w1 {
		for j := range w1[i] {
			if !slices.Equal(w1[i][j], w4[i][j]) {
				t.Fatalf("member %d tensor %d differs between 1 and 4 tokens", i, j)
			}
		}
	}
}

type fakeAccount struct {
	mu          sync.Mutex
	limit, used int64
	peak        int64
}

func (f *fakeAccount) ReserveMemory(n int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used+n > f.limit {
		return false
	}
	f.used += n
	f.peak = max(f.peak, f.used)
	return true
}

func (f *fakeAccount) FreeMemory(n int64) {
	f.mu.Lock()
	f.used -= n
	f.mu.Unlock()
}

// Members' estimated bytes are reserved in the run's memory account while they train, and
// given back after.
func TestMembersReserveRunMemory(t *testing.T) {
	data := blobs(240, 6, 3, 1)
	trainSet, val := data.Subset(seq(0, 180)), data.Subset(seq(180, 240))
	cfg := bagConfig(6, 3, 3)
	cfg.Workers = 3
	acct := &fakeAccount{limit: 1 << 40}
	_, rep, err := Train(context.Background(), cfg, trainSet, val, 77, Options{Memory: acct})
	if err != nil {
		t.Fatal(err)
	}
	if acct.peak == 0 || acct.used != 0 {
		t.Errorf("run account: peak %d, left %d; want a positive peak and nothing left", acct.peak, acct.used)
	}
	// An account too small for one member: members train one at a time, unreserved, with a
	// warning.
	small := &fakeAccount{limit: 1}
	_, rep, err = Train(context.Background(), cfg, trainSet, val, 77, Options{Memory: small})
	if err != nil {
		t.Fatal(err)
	}
	if small.used != 0 || len(rep.Warnings) == 0 {
		t.Errorf("small account: %d left, warnings %v", small.used, rep.Warnings)
	}
	for i, a := range rep.Members {
		for _, b := range rep.Members[i+1:] {
			if a.Started < b.Finished && b.Started < a.Finished {
				t.Errorf("small account: members %d and %d trained at the same time", a.Index, b.Index)
			}
		}
	}
}

// Three members on two CPU tokens: once no member waits to start, the one that trains alone at
// the end is raised to two GEMM threads (coreShare), never more, and the ensemble is still bit
// for bit the one trained on one token.
func TestFinishedMembersLendTheirTokens(t *testing.T) {
	data := blobs(240, 6, 3, 1)
	trainSet, val := data.Subset(seq(0, 180)), data.Subset(seq(180, 240))
	run := func(workers int) ([][][]float32, map[int]int) {
		cfg := bagConfig(6, 3, 3)
		cfg.Vary = Vary{} // equal members: the one started last trains alone at the end
		cfg.Base.Train.Epochs = 40
		cfg.Workers, cfg.MemberWorkers = workers, 1
		var log bytes.Buffer
		// The pool starts member 2 when member 0 or 1 has ended; its first step then waits for
		// the other, so that it certainly trains alone afterwards (whatever the scheduler does).
		var mu sync.Mutex
		done, bothDone := 0, make(chan struct{})
		opts := Options{Logger: zerolog.New(zerolog.SyncWriter(&log)).Level(zerolog.DebugLevel),
			OnMemberDone: func(r MemberReport) {
				mu.Lock()
				defer mu.Unlock()
				if done++; done == 2 {
					close(bothDone)
				}
			},
			Hooks: func(i int) []train.Hook {
				if i != 2 {
					return nil
				}
				return []train.Hook{train.OnStep("wait_for_the_others", 0, func(s *train.StepInfo) error {
					if s.Step == 0 {
						<-bothDone
					}
					return nil
				})}
			}}
		ens, _, err := Train(context.Background(), cfg, trainSet, val, 77, opts)
		if err != nil {
			t.Fatal(err)
		}
		var w [][][]float32
		for _, m := range ens.Models() {
			w = append(w, modelWeights(m))
		}
		raised := map[int]int{} // member -> the most GEMM threads a change gave it
		dec := json.NewDecoder(&log)
		for dec.More() {
			var line struct {
				Member  *int   `json:"member"`
				Threads int    `json:"gemm_threads"`
				From    *int   `json:"from"`
				Msg     string `json:"message"`
			}
			if err := dec.Decode(&line); err != nil {
				t.Fatal(err)
			}
			if line.Member != nil && line.From != nil {
				raised[*line.Member] = max(raised[*line.Member], line.Threads)
			}
		}
		return w, raised
	}
	w1, r1 := run(1)
	w2, r2 := run(2)
	if len(r1) != 0 {
		t.Errorf("on one token no member may change its threads: %v", r1)
	}
	if r2[2] != 2 {
		t.Errorf("member 2, training alone at the end, was not raised to 2 GEMM threads: %v", r2)
	}
	most := 0
	for _, n := range r2 {
		most = max(most, n)
	}
	if most != 2 {
		t.Errorf("GEMM threads after changes on 2 tokens: %v; want the member training alone at the end raised to 2, and none above", r2)
	}
	for i := range w1 {
		for j := range w1[i] {
			if !slices.Equal(w1[i][j], w2[i][j]) {
				t.Fatalf("member %d tensor %d differs between 1 and 2 tokens", i, j)
			}
		}
	}
}
