package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
)

// TestShowRunAndStage: pipe show RUN prints the summary pipe run prints (with the status
// ReadRun tells: crashed), and pipe show RUN STAGE the stage's whole manifest entry and files.
func TestShowRunAndStage(t *testing.T) {
	root := runsFixture(t)
	dir := filepath.Join(root, "digits", "20261130T050000Z-aaaaaa")
	code, out, errOut := runCLI("show", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m, _, err := pipeline.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	printSummary(&want, m)
	if !strings.HasPrefix(out, want.String()) || !strings.HasSuffix(out, "run: "+dir+"\n") {
		t.Errorf("show run:\n%s\nwant pipe run's summary:\n%s", out, want.String())
	}
	checkGolden(t, "show_run.golden", root, out)

	// A crashed run: its status and time to the last heartbeat, and who it was.
	_, out, _ = runCLI("show", filepath.Join(root, "digits", "20261130T060000Z-dddddd"))
	if !strings.HasPrefix(out, "digits: crashed in 250.0s\n") || !strings.Contains(out, "pid 4242") {
		t.Errorf("show crashed run:\n%s", out)
	}

	// A stage, by run id: every field of its entry, and its directory's files.
	sdir := filepath.Join(dir, "stages", "model")
	if err := os.MkdirAll(filepath.Join(sdir, "bundle"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sdir, "history.csv"), "epoch,loss\n1,0.5\n")
	code, out, errOut = runCLI("show", "20261130T050000Z-aaaaaa", "model", "--runs", root)
	if code != 0 {
		t.Fatalf("show stage: exit %d: %s", code, errOut)
	}
	s := m.Stages["model"]
	for _, want := range []string{s.CacheKey, "val_best_epoch", "early stopping after epoch 46", s.Attempts[0].Error, "epochs_run", "history.csv", "bundle/"} {
		if !strings.Contains(out, want) {
			t.Errorf("show stage lacks %q:\n%s", want, out)
		}
	}
	checkGolden(t, "show_stage.golden", root, out)

	code, _, errOut = runCLI("show", dir, "modle")
	if code != pipeline.ExitConfig || !strings.Contains(errOut, `did you mean "model"?`) {
		t.Errorf("a misspelt stage: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI("show", filepath.Join(root, "nope"))
	if code != pipeline.ExitConfig || !strings.Contains(errOut, "nope") {
		t.Errorf("a missing run: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI("show", dir, "model", "../../../etc/passwd.csv")
	if code != pipeline.ExitConfig {
		t.Errorf("a file outside the run's stages: exit %d, %s", code, errOut)
	}
}

// worstRecord builds a table shaped like an evaluate stage's worst-k rows: n rows of _row,
// loss, target (one null) and a note (one with a line break).
func worstRecord(mem memory.Allocator, n int) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "_row", Type: arrow.PrimitiveTypes.Int64},
		{Name: "loss", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "target", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "note", Type: arrow.BinaryTypes.String, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.Int64Builder).Append(int64(1000 - 7*i))
		b.Field(1).(*array.Float64Builder).Append(float64(n-i) / 4)
		if i == 1 {
			b.Field(2).(*array.StringBuilder).AppendNull()
		} else {
			b.Field(2).(*array.StringBuilder).Append(fmt.Sprintf("class_%d", i%3))
		}
		switch i {
		case 2:
			b.Field(3).(*array.StringBuilder).Append("two\nlines")
		case 3:
			b.Field(3).(*array.StringBuilder).Append(strings.Repeat("long ", 20))
		default:
			b.Field(3).(*array.StringBuilder).Append("ok")
		}
	}
	return b.NewRecordBatch()
}

// writeTable writes rec to path with tableio's writer (the format by the extension).
func writeTable(t *testing.T, path string, rec arrow.RecordBatch, mem memory.Allocator) {
	t.Helper()
	w, err := tableio.NewWriter(path, rec.Schema(), mem)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestShowTableFiles: the same rows written as Parquet, Arrow IPC and CSV print the same
// table: names, types, the first --rows rows, nulls, a line break escaped, a long text cut.
func TestShowTableFiles(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir := t.TempDir()
	const n = 12
	rec := worstRecord(mem, n)
	paths := []string{filepath.Join(dir, "worst.parquet"), filepath.Join(dir, "worst.arrow"), filepath.Join(dir, "worst.csv")}
	for _, p := range paths {
		writeTable(t, p, rec, mem)
	}
	rec.Release()

	var outs []string
	for _, p := range paths {
		var b bytes.Buffer
		if err := (tableView{Rows: 5, Width: 120}).print(&b, p, mem); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		outs = append(outs, b.String())
	}
	for i, o := range outs[1:] {
		if o != outs[0] {
			t.Errorf("%s prints differently from %s:\n%s\n%s", paths[i+1], paths[0], o, outs[0])
		}
	}
	checkGolden(t, "show_table.golden", dir, outs[0])
	lines := strings.Split(strings.TrimSuffix(outs[0], "\n"), "\n")
	if len(lines) != 2+5+1 {
		t.Fatalf("%d lines, want names, types, 5 rows and a note:\n%s", len(lines), outs[0])
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "_row loss target note" {
		t.Errorf("names %v", f)
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "int64 float64 utf8 utf8" {
		t.Errorf("types %v", f)
	}
	if !strings.Contains(lines[3], "null") || !strings.Contains(lines[4], `"two\nlines"`) || !strings.Contains(lines[5], "…") {
		t.Errorf("null, line break or long text:\n%s", outs[0])
	}
	if !strings.Contains(lines[7], "more follow") {
		t.Errorf("the note does not say more rows follow: %s", lines[7])
	}
	// Every row when --rows is larger than the table.
	var b bytes.Buffer
	if err := (tableView{Rows: 100, Width: 120}).print(&b, paths[0], mem); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(b.String(), "\n"); got != 2+n+1 || !strings.Contains(b.String(), fmt.Sprintf("(%d rows)", n)) {
		t.Errorf("--rows 100 of %d rows:\n%s", n, b.String())
	}

	// Through the command: pipe show FILE, and a file of a run by stage and name.
	code, out, errOut := runCLI("show", paths[1], "--rows", "5")
	if code != 0 || out != outs[0] {
		t.Errorf("pipe show FILE: exit %d, %s\n%s", code, errOut, out)
	}
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(filepath.Join(run, "stages", "eval"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(paths[0], filepath.Join(run, "stages", "eval", "worst_test_out.parquet")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI("show", run, "eval", "worst_test_out.parquet", "--rows", "5")
	if code != 0 || out != outs[0] {
		t.Errorf("pipe show RUN STAGE FILE: exit %d, %s\n%s", code, errOut, out)
	}
	code, _, errOut = runCLI("show", run, "eval", "worst_val_out.parquet")
	if code != pipeline.ExitConfig || !strings.Contains(errOut, "worst_val_out.parquet") || !strings.Contains(errOut, "worst_test_out.parquet") {
		t.Errorf("a file the stage does not have: exit %d, %s (want its table files named)", code, errOut)
	}
	// A damaged file is an error that names it; a file that is not a table says what is.
	bad := writeFile(t, filepath.Join(dir, "bad.parquet"), "not parquet at all")
	if code, _, errOut := runCLI("show", bad); code != pipeline.ExitFailed || !strings.Contains(errOut, bad) {
		t.Errorf("a damaged Parquet file: exit %d, %s", code, errOut)
	}
	txt := writeFile(t, filepath.Join(dir, "notes.txt"), "x")
	if code, _, errOut := runCLI("show", txt); code == 0 || !strings.Contains(errOut, "neither a run directory nor a table file") {
		t.Errorf("a text file: exit %d, %s", code, errOut)
	}
}

// TestShowTableFitsTheWidth: columns that do not fit are left out and named; no line is
// wider than the width.
func TestShowTableFitsTheWidth(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	const ncols = 30
	fields := make([]arrow.Field, ncols)
	for j := range fields {
		fields[j] = arrow.Field{Name: fmt.Sprintf("pixel_%02d", j), Type: arrow.PrimitiveTypes.Float32}
	}
	b := array.NewRecordBuilder(mem, arrow.NewSchema(fields, nil))
	for i := range 3 {
		for j := range ncols {
			b.Field(j).(*array.Float32Builder).Append(float32(i*ncols+j) / 7)
		}
	}
	rec := b.NewRecordBatch()
	b.Release()
	path := filepath.Join(t.TempDir(), "wide.arrow")
	writeTable(t, path, rec, mem)
	rec.Release()

	for _, width := range []int{60, 120, 5} {
		var out bytes.Buffer
		if err := (tableView{Rows: 3, Width: width}).print(&out, path, mem); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		shown := len(strings.Fields(lines[0]))
		for _, l := range lines[:len(lines)-1] {
			if utf8.RuneCountInString(l) > width {
				t.Errorf("width %d: line of %d characters: %q", width, utf8.RuneCountInString(l), l)
			}
		}
		note := lines[len(lines)-1]
		if shown < 1 || !strings.Contains(note, fmt.Sprintf("%d of %d columns", shown, ncols)) || !strings.Contains(note, fmt.Sprintf("pixel_%02d", shown)) {
			t.Errorf("width %d: %d columns shown, note %q", width, shown, note)
		}
	}
}

// TestShowRunningRunTimesSoFar: a running run's summary gives its time so far.
func TestShowRunningRunTimesSoFar(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := fixtureManifest("p", "r", pipeline.StatusRunning, start, 0)
	var b bytes.Buffer
	printRunSummary(&b, "d", m, pipeline.StatusRunning, start.Add(90*time.Second))
	if !strings.HasPrefix(b.String(), "p: running in 90.0s\n") || !strings.Contains(b.String(), "running: pid 4242") {
		t.Errorf("running run:\n%s", b.String())
	}
}
