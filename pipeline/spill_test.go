package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// peakAllocator tracks the live and peak bytes of Arrow buffers.
type peakAllocator struct {
	memory.Allocator
	live, peak atomic.Int64
}

func (a *peakAllocator) Allocate(n int) []byte {
	b := a.Allocator.Allocate(n)
	v := a.live.Add(int64(len(b)))
	for {
		p := a.peak.Load()
		if v <= p || a.peak.CompareAndSwap(p, v) {
			break
		}
	}
	return b
}

func (a *peakAllocator) Reallocate(size int, b []byte) []byte {
	old := len(b)
	nb := a.Allocator.Reallocate(size, b)
	v := a.live.Add(int64(len(nb) - old))
	for {
		p := a.peak.Load()
		if v <= p || a.peak.CompareAndSwap(p, v) {
			break
		}
	}
	return nb
}

func (a *peakAllocator) Free(b []byte) {
	a.live.Add(-int64(len(b)))
	a.Allocator.Free(b)
}

// heapSampler records the peak of live heap objects while it runs.
type heapSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak uint64
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > h.peak {
				h.peak = v
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 { close(h.stop); h.wg.Wait(); return h.peak }

// runLargerThanBudget streams rows×16 bytes through gen → double → total (3 epochs) with
// a memory budget of budget bytes, and returns the run's manifest and the peaks.
func runLargerThanBudget(tb testing.TB, rows, budget int) (m *Manifest, arrowPeak int64, heapPeak uint64) {
	src := fmt.Sprintf(`
[pipeline]
memory_budget = %d
[stages.load]
kind = "gen"
rows = %d
batch = 8192
[stages.twice]
kind = "double"
input = "load"
[stages.sum]
kind = "total"
input = "twice"
epochs = 3
`, budget, rows)
	p, err := Parse([]byte(src), "spill.toml", ".", testRegistry(), LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	mem := &peakAllocator{Allocator: memory.NewGoAllocator()}
	runtime.GC()
	hs := startHeapSampler()
	res, err := Run(context.Background(), p, RunOptions{Dir: filepath.Join(tb.TempDir(), "run"), Mem: mem})
	heapPeak = hs.Stop()
	if err != nil {
		tb.Fatal(err)
	}
	if mem.live.Load() != 0 {
		tb.Fatalf("%d bytes of Arrow memory leaked", mem.live.Load())
	}
	return res.Manifest, mem.peak.Load(), heapPeak
}

// TestDataLargerThanBudget: 8× more data than the memory budget flows through two stages and
// is replayed three times; Arrow memory stays within the budget plus the batches in flight.
func TestDataLargerThanBudget(t *testing.T) {
	const rows, budget = 1 << 19, 1 << 20 // 8 MiB of data, 1 MiB budget
	m, arrowPeak, heapPeak := runLargerThanBudget(t, rows, budget)
	var want float64
	for x := 0; x < rows; x++ {
		want += float64(2 * x)
	}
	if got := m.Stages["sum"].Metrics["all_sum"]; got != want {
		t.Errorf("sum %v, want %v", got, want)
	}
	if !m.Stages["load"].Outputs["out"].Spilled || !m.Stages["twice"].Outputs["out"].Spilled {
		t.Error("tables did not spill")
	}
	// In flight at once: the table budget plus, per stage, a batch being built and one being
	// read back (8192 rows × 16 bytes, with builder slack).
	limit := int64(budget + 16*8192*16)
	t.Logf("data %d MiB, budget %d MiB: peak table memory %d KiB, peak Arrow memory %d KiB, peak heap %d MiB",
		rows*16>>20, budget>>20, m.PeakTableMem>>10, arrowPeak>>10, heapPeak>>20)
	// The table budget also counts a spilled batch while a reader holds it (it cannot be
	// spilled again): two stages read spilled tables back, one 8192-row batch each (16 bytes a
	// row, with a quarter for buffer padding), which may sit on top of a full budget.
	if tableLimit := int64(budget + 2*8192*16*5/4); m.PeakTableMem > tableLimit {
		t.Errorf("peak table memory %d over the budget %d plus two read-back batches (%d)", m.PeakTableMem, budget, tableLimit)
	}
	if arrowPeak > limit {
		t.Errorf("peak Arrow memory %d over %d", arrowPeak, limit)
	}
}

// BenchmarkSpill reports throughput and peaks for data 16× the memory budget.
func BenchmarkSpill(b *testing.B) {
	const rows, budget = 4 << 20, 4 << 20 // 64 MiB of data, 4 MiB budget
	b.ReportAllocs()
	var arrowPeak int64
	var heapPeak uint64
	for i := 0; i < b.N; i++ {
		_, arrowPeak, heapPeak = runLargerThanBudget(b, rows, budget)
	}
	// Bytes moved: the source once, the doubled table once, and three replays.
	moved := float64(rows*16) * 5
	b.ReportMetric(moved*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(arrowPeak)/(1<<20), "peak_arrow_MiB")
	b.ReportMetric(float64(heapPeak)/(1<<20), "peak_heap_MiB")
	b.ReportMetric(float64(rows*16)/(1<<20), "data_MiB")
}
