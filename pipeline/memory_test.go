package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	const budget = 32 << 20
	limit, restore := applyMemoryLimit(budget, func(string) string { return "" })
	if want := int64(budget) + memoryLimitMargin(budget); limit != want {
		t.Errorf("limit %d, want budget + margin %d", limit, want)
	}
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("runtime memory limit %d, want %d", got, limit)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("after the run the limit is %d, want the previous %d", got, before)
	}

	env := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "3GiB"
		}
		return ""
	}
	limit, restore = applyMemoryLimit(budget, env)
	defer restore()
	if limit != 0 {
		t.Errorf("with GOMEMLIMIT set, a limit %d was set", limit)
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("with GOMEMLIMIT set, the runtime limit changed to %d", got)
	}
	if limit, _ := applyMemoryLimit(0, func(string) string { return "" }); limit != 0 {
		t.Errorf("an unbounded budget set a limit %d", limit)
	}
}

func TestRunRecordsGoMemoryLimit(t *testing.T) {
	m, _, _ := runLargerThanBudget(t, 1000, 1<<20)
	want := float64(1<<20 + memoryLimitMargin(1<<20))
	if got, ok := m.Run["go_memory_limit_bytes"]; !ok || fmt.Sprint(got) != fmt.Sprint(want) && fmt.Sprint(got) != fmt.Sprint(int64(want)) {
		t.Errorf("manifest run info go_memory_limit_bytes = %v, want %v", got, int64(want))
	}
	t.Setenv("GOMEMLIMIT", "8GiB")
	m, _, _ = runLargerThanBudget(t, 1000, 1<<20)
	if got, ok := m.Run["go_memory_limit_bytes"]; ok {
		t.Errorf("with GOMEMLIMIT set the run set a limit %v", got)
	}
}

func int64Batch(mem memory.Allocator, s *arrow.Schema, from, n int) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	for i := range n {
		b.Append(int64(from + i))
	}
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(s, []arrow.Array{col}, int64(n))
}

// A batch read back from a spill file counts in the budget while a reader holds it.
func TestSpillReadBackCountsInBudget(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	tab := NewTable("s.out", s, mem, 1000, filepath.Join(t.TempDir(), "spill"))
	defer tab.Release()
	for i := range 4 {
		rec := int64Batch(mem, s, i*100, 100) // 800 bytes: the second spills the table
		if err := tab.Append(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	tab.Close(nil)
	if !tab.Spilled() || tab.budget.used.Load() != 0 {
		t.Fatalf("spilled %v, %d bytes held; want spilled, none held", tab.Spilled(), tab.budget.used.Load())
	}
	r := tab.Scan(context.Background())
	if !r.Next() {
		t.Fatal(r.Err())
	}
	size := recordBytes(r.RecordBatch())
	if got := tab.budget.used.Load(); got != size {
		t.Errorf("holding a read-back batch: %d bytes counted, want %d", got, size)
	}
	for r.Next() {
	}
	r.Release()
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if got := tab.budget.used.Load(); got != 0 {
		t.Errorf("after the reader: %d bytes counted, want 0", got)
	}
	if tab.budget.peak.Load() < size {
		t.Errorf("peak %d does not include the read-back batch (%d bytes)", tab.budget.peak.Load(), size)
	}
}

// A stage's reservation outside tables counts against the budget and is refused past it.
func TestStageReserveMemory(t *testing.T) {
	sc := &StageContext{run: &runState{budget: &memBudget{limit: 1000}}}
	if !sc.ReserveMemory(600) {
		t.Fatal("600 of 1000 bytes refused")
	}
	if sc.ReserveMemory(600) {
		t.Error("1200 of 1000 bytes granted")
	}
	sc.FreeMemory(600)
	if !sc.ReserveMemory(1000) {
		t.Error("1000 of 1000 bytes refused after the free")
	}
	if sc.MemoryBudget() != 1000 {
		t.Errorf("budget %d", sc.MemoryBudget())
	}
}

// Held bytes count whatever the budget says: past it they are still counted (in the peak,
// and against other reservations), and the caller is told they did not fit.
func TestStageHoldMemory(t *testing.T) {
	b := &memBudget{limit: 1000}
	sc := &StageContext{run: &runState{budget: b}}
	if !sc.HoldMemory(600) {
		t.Error("600 of 1000 bytes: held, but reported as over the budget")
	}
	if sc.HoldMemory(700) {
		t.Error("1300 of 1000 bytes: reported as fitting")
	}
	if b.used.Load() != 1300 || b.peak.Load() != 1300 {
		t.Errorf("used %d, peak %d after holding 600 and 700; want 1300 both", b.used.Load(), b.peak.Load())
	}
	if sc.ReserveMemory(1) {
		t.Error("a reservation was granted while the held bytes exceed the budget")
	}
	sc.FreeMemory(1300)
	if b.used.Load() != 0 {
		t.Errorf("used %d after freeing all", b.used.Load())
	}
}

// A spilled batch is read back as views of the frame read from the file, not copied again
// into the allocator's memory; the values are the ones appended, for every batch. A frame
// cut short is an error that says where.
func TestSpillReadBackWithoutCopy(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	tab := NewTable("s.out", s, mem, 1000, filepath.Join(t.TempDir(), "spill"))
	defer tab.Release()
	for i := range 5 {
		rec := int64Batch(mem, s, i*1000, 1000+i) // 8 KB each: over the budget, spilled
		if err := tab.Append(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if c := tab.spill.wbuf.Cap(); c < 8000 {
		t.Fatalf("the spill's encode buffer holds %d bytes after an 8 KB batch: not reused", c)
	}
	tab.Close(nil)
	if !tab.Spilled() {
		t.Fatal("the table did not spill")
	}
	// A closed table appends nothing more: the encode buffer is let go.
	if c := tab.spill.wbuf.Cap(); c != 0 {
		t.Errorf("closed table: the spill's encode buffer still holds %d bytes", c)
	}
	r := tab.Scan(context.Background())
	batches := 0
	for r.Next() {
		rec := r.RecordBatch()
		// Before: the IPC reader allocated each batch's body (8 KB) from mem.
		if got := mem.CurrentAlloc(); got != 0 {
			t.Errorf("batch %d read back: %d bytes allocated from the allocator, want 0 (a view of the frame)", batches, got)
		}
		col := rec.Column(0).(*array.Int64)
		if rec.NumRows() != int64(1000+batches) {
			t.Fatalf("batch %d: %d rows, want %d", batches, rec.NumRows(), 1000+batches)
		}
		for j := range col.Len() {
			if col.Value(j) != int64(batches*1000+j) {
				t.Fatalf("batch %d row %d: %d, want %d", batches, j, col.Value(j), batches*1000+j)
			}
		}
		batches++
	}
	r.Release()
	if err := r.Err(); err != nil || batches != 5 {
		t.Fatalf("%d batches read back (want 5): %v", batches, err)
	}
	// A frame cut short.
	sf := tab.spill
	sf.mu.Lock()
	sf.lengths[2] -= 100
	sf.mu.Unlock()
	if _, err := sf.read(2); err == nil || !strings.Contains(err.Error(), "read spilled batch 2") {
		t.Errorf("a truncated frame: %v, want an error naming the batch", err)
	}
}
