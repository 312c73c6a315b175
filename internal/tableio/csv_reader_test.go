package tableio_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/pipe-ml/pipe/internal/tableio"
)

const null = "(null)"

func TestCSVReaderGood(t *testing.T) {
	declared := arrow.NewSchema([]arrow.Field{{Name: "code", Type: arrow.BinaryTypes.String}}, nil)
	tests := []struct {
		name  string
		in    string
		opts  tableio.CSVOptions
		types []string
		rows  [][]string
	}{
		{
			name:  "types",
			in:    "i,f,s,b\n1,2.5,x,true\n-3,-0.25,y,FALSE\n+7,1e3,z,True\n",
			types: []string{"int64", "float64", "utf8", "bool"},
			rows:  [][]string{{"1", "2.5", "x", "true"}, {"-3", "-0.25", "y", "false"}, {"7", "1000", "z", "true"}},
		},
		{
			name:  "quoting: delimiter, doubled quote, line break inside quotes",
			in:    "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n\"line1\nline2\",\"\"\n",
			types: []string{"utf8", "utf8"},
			rows:  [][]string{{"x,y", `say "hi"`}, {"line1\nline2", ""}},
		},
		{
			name:  "CRLF, BOM, no final newline",
			in:    "\xef\xbb\xbfa,b\r\n1,x\r\n2,\"y\r\nz\"",
			types: []string{"int64", "utf8"},
			rows:  [][]string{{"1", "x"}, {"2", "y\r\nz"}},
		},
		{
			name:  "blank lines are not rows",
			in:    "\na,b\n\n1,2\r\n\r\n3,4\n\n",
			types: []string{"int64", "int64"},
			rows:  [][]string{{"1", "2"}, {"3", "4"}},
		},
		{
			name:  "nulls: empty and NA; a quoted empty string is not null",
			in:    "n,f,s\n1,,\"\"\nNA,NA,NA\n,3.5,\n",
			types: []string{"int64", "float64", "utf8"},
			rows:  [][]string{{"1", null, ""}, {null, null, null}, {null, "3.5", null}},
		},
		{
			name:  "inference: first value empty, integers, then a float in the sample",
			in:    "a,b\n,1\n2,2\n3,2.5\n",
			types: []string{"int64", "float64"},
			rows:  [][]string{{null, "1"}, {"2", "2"}, {"3", "2.5"}},
		},
		{
			name:  "inference: all null is utf8, mixed bool and number is utf8",
			in:    "a,b\n,true\n,1\n",
			types: []string{"utf8", "utf8"},
			rows:  [][]string{{null, "true"}, {null, "1"}},
		},
		{
			name:  "declared column keeps leading zeros, others inferred",
			in:    "code,v\n007,1.5\n010,2\n",
			opts:  tableio.CSVOptions{Schema: declared},
			types: []string{"utf8", "float64"},
			rows:  [][]string{{"007", "1.5"}, {"010", "2"}},
		},
		{
			name:  "semicolon delimiter and custom null values",
			in:    "a;b\n1,5;-\n-;x\n",
			opts:  tableio.CSVOptions{Delimiter: ';', NullValues: []string{"-"}},
			types: []string{"utf8", "utf8"},
			rows:  [][]string{{"1,5", null}, {null, "x"}},
		},
		{
			name:  "number forms on the slow path",
			in:    "f\n1.5E-3\n.5\n5.\n12345678901234567890\n0x1p-2\n",
			types: []string{"float64"},
			rows:  [][]string{{"0.0015"}, {"0.5"}, {"5"}, {"1.2345678901234567e+19"}, {"0.25"}},
		},
		{
			name:  "empty header name is numbered",
			in:    ",b\n1,2\n",
			types: []string{"int64", "int64"},
			rows:  [][]string{{"1", "2"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			r, err := tableio.NewCSVReader(strings.NewReader(tc.in), mem, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			got, err := drain(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.types, ",") != strings.Join(tc.types, ",") {
				t.Errorf("types = %v, want %v", got.types, tc.types)
			}
			if rowsText(got.rows) != rowsText(tc.rows) {
				t.Errorf("rows:\n%s\nwant:\n%s", rowsText(got.rows), rowsText(tc.rows))
			}
		})
	}
}

func TestCSVReaderHeaderNames(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	r, err := tableio.NewCSVReader(strings.NewReader("\"x,y\",,z\n1,2,3\n"), mem, tableio.CSVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	var names []string
	for _, f := range r.Schema().Fields() {
		names = append(names, f.Name)
	}
	if want := "x,y|column_2|z"; strings.Join(names, "|") != want {
		t.Errorf("names = %q, want %q", strings.Join(names, "|"), want)
	}
}

func TestCSVReaderDeclaredMetadataKept(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	md := arrow.NewMetadata([]string{"pipe.role"}, []string{"target"})
	s := arrow.NewSchema([]arrow.Field{{Name: "y", Type: arrow.PrimitiveTypes.Int64, Metadata: md}}, nil)
	r, err := tableio.NewCSVReader(strings.NewReader("x,y\n1.5,2\n"), mem, tableio.CSVOptions{Schema: s})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	f := r.Schema().Field(1)
	if f.Type.ID() != arrow.INT64 || !f.HasMetadata() || f.Metadata.Values()[0] != "target" {
		t.Errorf("field y = %v, want int64 with pipe.role=target", f)
	}
	if !r.Next() || r.RecordBatch().Schema().Field(1).Metadata.Values()[0] != "target" {
		t.Errorf("batch lost the declared metadata: %v", r.Err())
	}
}

func TestCSVReaderBad(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		opts  tableio.CSVOptions
		err   string // the whole error text
		row   int64  // the RowError's row, 0 when the error is not a RowError
		valid int    // rows returned before the error
	}{
		{
			name: "bad float",
			in:   "id,income\n1,10.5\n2,12k\n",
			opts: tableio.CSVOptions{Name: "credit.csv", Schema: arrow.NewSchema([]arrow.Field{{Name: "income", Type: arrow.PrimitiveTypes.Float64}}, nil)},
			err:  `credit.csv:3: row 2, column "income": expected float64, found "12k". Fix the value, declare the column as string in [stages.load.schema], or set on_bad_row = "skip".`,
			row:  2,
		},
		{
			name:  "integer column meets a float after the sample",
			in:    "a\n1\n2\n3.5\n",
			opts:  tableio.CSVOptions{Name: "f.csv", SampleRows: 2},
			err:   `f.csv:4: row 3, column "a": expected int64, found "3.5". The column's type int64 was inferred from the first 2 rows. Fix the value, declare the column as float64 in [stages.load.schema], or set on_bad_row = "skip".`,
			row:   3,
			valid: 0, // one batch: the bad row fails it whole
		},
		{
			name: "too many fields",
			in:   "a,b\n1,2\n3,4,5,6\n",
			opts: tableio.CSVOptions{Name: "f.csv"},
			err:  `f.csv:3: row 2: expected 2 fields, found 4. Fix the row (a field that contains the delimiter, a quote or a line break must be quoted), or set on_bad_row = "skip".`,
			row:  2,
		},
		{
			name: "too few fields after a multi-line row",
			in:   "a,b\n\"x\ny\",2\n3\n",
			opts: tableio.CSVOptions{Name: "f.csv"},
			err:  `f.csv:4: row 2: expected 2 fields, found 1. Fix the row (a field that contains the delimiter, a quote or a line break must be quoted), or set on_bad_row = "skip".`,
			row:  2,
		},
		{
			name: "unterminated quote",
			in:   "a,b\n1,\"open\n2,3\n",
			opts: tableio.CSVOptions{Name: "f.csv"},
			err:  `f.csv:2: row 1, column "b": a quoted field has no closing quote before the end of the input. Close the quote (a quote inside a quoted field is written twice: ""), or set on_bad_row = "skip".`,
			row:  1,
		},
		{
			name: "NaN literal",
			in:   "a,x\n1,0.5\n2,NaN\n",
			opts: tableio.CSVOptions{Name: "f.csv"},
			err:  `f.csv:3: row 2, column "x": expected a finite float64, found "NaN". pipe does not let NaN or infinity into a table: leave the field empty (a null, which an impute stage can fill), fix the value, or set on_bad_row = "skip".`,
			row:  2,
		},
		{
			name: "infinity by overflow",
			in:   "x\n1e400\n",
			opts: tableio.CSVOptions{Name: "f.csv", Schema: arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64}}, nil)},
			err:  `f.csv:2: row 1, column "x": expected a finite float64, found "1e400". pipe does not let NaN or infinity into a table: leave the field empty (a null, which an impute stage can fill), fix the value, or set on_bad_row = "skip".`,
			row:  1,
		},
		{
			name: "bare quote in an unquoted field",
			in:   "a\nab\"c\"\n",
			opts: tableio.CSVOptions{Name: "f.csv"},
			err:  `f.csv:2: row 1, column "a": a quote inside the unquoted field "ab\"c\"". Quote the whole field and double the quotes inside it ("a ""b"" c"), or set on_bad_row = "skip".`,
			row:  1,
		},
		{
			name: "empty input",
			in:   "",
			opts: tableio.CSVOptions{Name: "f.csv"},
			err:  `f.csv: the input is empty: a CSV file needs a header row naming its columns, then data rows`,
		},
		{
			name: "header without rows",
			in:   "a,b\n\n",
			opts: tableio.CSVOptions{Name: "f.csv"},
			err:  `f.csv: the input has a header row but no data rows`,
		},
		{
			name: "duplicate column names",
			in:   "a,b,a\n1,2,3\n",
			opts: tableio.CSVOptions{Name: "f.csv"},
			err:  `f.csv:1: columns 1 and 3 of the header are both named "a"; give them distinct names`,
		},
		{
			name: "declared column missing from the header",
			in:   "a\n1\n",
			opts: tableio.CSVOptions{Name: "f.csv", Schema: arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.PrimitiveTypes.Int64}}, nil)},
			err:  `f.csv: the declared schema has a column "b" that the header does not have (header: a); fix the name in the schema`,
		},
		{
			name: "quote as delimiter",
			in:   "a\n1\n",
			opts: tableio.CSVOptions{Delimiter: '"'},
			err:  `csv options: delimiter '"' is not supported; use an ASCII character other than a quote or a line break`,
		},
		{
			name: "bad policy",
			in:   "a\n1\n",
			opts: tableio.CSVOptions{OnBadRow: "ignore"},
			err:  `csv options: on_bad_row = "ignore" is not one of "fail" or "skip"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			opts := tc.opts
			if opts.Stage == "" {
				opts.Stage = "load" // the hints name the reading stage's keys
			}
			r, err := tableio.NewCSVReader(strings.NewReader(tc.in), mem, opts)
			var got table
			if err == nil {
				got, err = drain(t, r)
				r.Release()
			}
			if err == nil {
				t.Fatalf("no error; rows %v", got.rows)
			}
			if err.Error() != tc.err {
				t.Errorf("error:\n got %s\nwant %s", err, tc.err)
			}
			var re *tableio.RowError
			if errors.As(err, &re) != (tc.row > 0) {
				t.Fatalf("errors.As RowError = %v, want %v", !(tc.row > 0), tc.row > 0)
			}
			if re != nil && re.Row != tc.row {
				t.Errorf("RowError.Row = %d, want %d", re.Row, tc.row)
			}
			if len(got.rows) != tc.valid {
				t.Errorf("rows before the error = %d, want %d", len(got.rows), tc.valid)
			}
		})
	}
}

func TestCSVReaderSkip(t *testing.T) {
	in := "a,b\n1,x\n2\n3,y\nNaN,z\n4,\"open\n"
	for _, workers := range []int{1, 2} {
		t.Run("workers="+string(rune('0'+workers)), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			s := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Float64}}, nil)
			r, err := tableio.NewCSVReader(strings.NewReader(in), mem,
				tableio.CSVOptions{Schema: s, OnBadRow: tableio.OnBadRowSkip, BatchRows: 2, Workers: workers, Name: "s.csv"})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			got, err := drain(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if want := "1|x\n3|y\n"; rowsText(got.rows) != want {
				t.Errorf("rows %q, want %q", rowsText(got.rows), want)
			}
			if r.SkippedRows() != 3 {
				t.Errorf("SkippedRows = %d, want 3", r.SkippedRows())
			}
			var where []int64
			for _, e := range r.SkippedExamples() {
				where = append(where, e.Row)
			}
			if len(where) != 3 || where[0] != 2 || where[1] != 4 || where[2] != 5 {
				t.Errorf("skipped rows %v, want [2 4 5]", where)
			}
		})
	}
}

func TestCSVReaderSkipExamplesCapped(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var b strings.Builder
	b.WriteString("a\n")
	for i := 0; i < 25; i++ {
		b.WriteString("1\nbad\n")
	}
	s := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil)
	r, err := tableio.NewCSVReader(strings.NewReader(b.String()), mem,
		tableio.CSVOptions{Schema: s, OnBadRow: tableio.OnBadRowSkip, BatchRows: 7, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	got, err := drain(t, r)
	if err != nil {
		t.Fatal(err)
	}
	ex := r.SkippedExamples()
	if len(got.rows) != 25 || r.SkippedRows() != 25 || len(ex) != 10 {
		t.Fatalf("rows %d skipped %d examples %d, want 25, 25, 10", len(got.rows), r.SkippedRows(), len(ex))
	}
	for k, e := range ex {
		if want := int64(2 * (k + 1)); e.Row != want {
			t.Errorf("example %d is row %d, want %d (input order)", k, e.Row, want)
		}
	}
}

func TestCSVReaderLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("a\n")
	for i := 0; i < 100; i++ {
		b.WriteString(strings.Repeat("1", 1+i%3) + "\n")
	}
	for _, tc := range []struct {
		limit, batch int64
		want         []int64
	}{
		{limit: 10, batch: 4, want: []int64{4, 4, 2}},
		{limit: 1, batch: 4, want: []int64{1}},
		{limit: 100, batch: 50, want: []int64{50, 50}},
		{limit: 1000, batch: 64, want: []int64{64, 36}},
	} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		r, err := tableio.NewCSVReader(strings.NewReader(b.String()), mem,
			tableio.CSVOptions{Limit: tc.limit, BatchRows: int(tc.batch)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := drain(t, r)
		r.Release()
		mem.AssertSize(t, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.batchRows) != len(tc.want) {
			t.Fatalf("limit %d batch %d: batches %v, want %v", tc.limit, tc.batch, got.batchRows, tc.want)
		}
		for i := range tc.want {
			if got.batchRows[i] != tc.want[i] {
				t.Errorf("limit %d batch %d: batches %v, want %v", tc.limit, tc.batch, got.batchRows, tc.want)
			}
		}
	}
}

func TestCSVReaderReleaseEarly(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := 0; i < 5000; i++ {
		b.WriteString("1,abc\n")
	}
	r, err := tableio.NewCSVReader(strings.NewReader(b.String()), mem, tableio.CSVOptions{BatchRows: 100, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Next() {
		t.Fatal(r.Err())
	}
	r.RecordBatch().Retain()
	kept := r.RecordBatch()
	r.Release() // with batches parsed but not consumed
	r.Release()
	if kept.NumRows() != 100 {
		t.Errorf("kept batch has %d rows", kept.NumRows())
	}
	kept.Release()
}

func TestCSVReaderReadError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rows := strings.Repeat("12345,abc\n", 1_000_000) // 10 MB: the error comes after the first read
	in := io.MultiReader(strings.NewReader("a,b\n"+rows), iotest.ErrReader(errors.New("disk gone")))
	r, err := tableio.NewCSVReader(in, mem, tableio.CSVOptions{SampleRows: 10, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	got, err := drain(t, r)
	if err == nil || err.Error() != "input: reading: disk gone" {
		t.Errorf("error %v after %d rows, want input: reading: disk gone", err, len(got.rows))
	}
}
