package stages

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/internal/tableio"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

// Field names shared by the sources.
const (
	fLimit  = "limit"
	fSample = "sample"
	fTarget = "target"
	fIgnore = "ignore"
)

func sourceFields() []pipeline.Field {
	return []pipeline.Field{
		{Name: fLimit, Type: pipeline.TypeInt, Default: int64(0), Min: pipeline.Bound(0), Doc: "Read only this many rows (0: all). Lets tests run any pipeline scaled down with --set stage.limit=N."},
		{Name: fSample, Type: pipeline.TypeString, Default: "first", Enum: []string{"first", "random"}, Doc: "With limit: the first rows, or a seeded uniform sample of rows (two passes over the input)."},
		{Name: fTarget, Type: pipeline.TypeStrings, Default: []string{"target"}, Doc: "The target column(s), marked with the target role so that no transform treats them as features. A default name that is absent is ignored; a named column that is absent is an error."},
		{Name: fIgnore, Type: pipeline.TypeStrings, Doc: "Columns to drop on read (ids, leaky columns)."},
	}
}

func csvKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "csv", Shape: pipeline.ShapeSource,
		Doc: "Reads a CSV file (or .csv.gz). Column types are declared in `schema` or inferred from a sample of rows (not only the first); a column read as string although all but a few (under 1 in 20) of its sampled values are numbers is a warning naming the first non-number and its row. " +
			"Quoting, empty fields (null) and a header row are handled. A malformed row is an error naming the file, line, row and column, unless on_bad_row = \"skip\", which drops and counts it. Adds the row id column `_row`.",
		Fields: append([]pipeline.Field{
			{Name: "path", Type: pipeline.TypeString, Required: true, Path: pipeline.PathInput, Doc: "The file, relative to the pipeline file."},
			{Name: "schema", Type: pipeline.TypeTable, Elem: &pipeline.Field{Name: "<column>", Type: pipeline.TypeString, Enum: csvTypeNames, Doc: "The column's type."}, Doc: "Column types by name: \"int64\", \"int32\", \"float64\", \"float32\", \"bool\" or \"string\". Unnamed columns are inferred."},
			{Name: "delimiter", Type: pipeline.TypeString, Default: ",", Doc: "The field separator, one ASCII character."},
			{Name: "null_values", Type: pipeline.TypeStrings, Default: []string{"", "NA"}, Doc: "Field texts read as null."},
			{Name: "on_bad_row", Type: pipeline.TypeString, Default: "fail", Enum: []string{"fail", "skip"}, Doc: "What a malformed row does: stop the run with a precise error, or be skipped and counted in the manifest."},
			{Name: "sample_rows", Type: pipeline.TypeInt, Default: int64(10000), Min: pipeline.Bound(1), Doc: "Rows read to infer column types."},
			fingerprintField(),
		}, sourceFields()...),
		Example:     "[stages.load]\nkind = \"csv\"\npath = \"credit_data.csv\"\ntarget = \"target\"",
		New:         newFileSource("csv"),
		Fingerprint: fileFingerprint,
	}
}

func parquetKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "parquet", Shape: pipeline.ShapeSource,
		Doc: "Reads a Parquet file through arrow-go's reader. Adds the row id column `_row`.",
		Fields: append([]pipeline.Field{
			{Name: "path", Type: pipeline.TypeString, Required: true, Path: pipeline.PathInput, Doc: "The file, relative to the pipeline file."},
			fingerprintField(),
		}, sourceFields()...),
		New:         newFileSource("parquet"),
		Fingerprint: fileFingerprint,
	}
}

func arrowKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "arrow", Shape: pipeline.ShapeSource,
		Doc: "Reads an Arrow IPC file (.arrow, .ipc, .feather). Adds the row id column `_row`.",
		Fields: append([]pipeline.Field{
			{Name: "path", Type: pipeline.TypeString, Required: true, Path: pipeline.PathInput, Doc: "The file, relative to the pipeline file."},
			fingerprintField(),
		}, sourceFields()...),
		New:         newFileSource("arrow"),
		Fingerprint: fileFingerprint,
	}
}

// csvTypeNames are the keys of csvTypes, for the schema field's spec.
var csvTypeNames = []string{"int64", "int32", "float64", "float32", "bool", "string"}

var csvTypes = map[string]arrow.DataType{
	"int64": arrow.PrimitiveTypes.Int64, "int32": arrow.PrimitiveTypes.Int32, "float64": arrow.PrimitiveTypes.Float64,
	"float32": arrow.PrimitiveTypes.Float32, "bool": arrow.FixedWidthTypes.Boolean, "string": arrow.BinaryTypes.String,
}

func newFileSource(format string) func(c *pipeline.StageConfig) (pipeline.Stage, error) {
	return func(c *pipeline.StageConfig) (pipeline.Stage, error) {
		path := c.Path("path")
		f, _, err := tableio.FormatOf(path)
		if err != nil {
			return nil, c.Errorf("path", "%v", err)
		}
		if string(f) != format {
			return nil, c.Errorf("path", "%q is a %s file, but this stage is kind %q", c.String("path"), f, format)
		}
		opts := tableio.CSVOptions{Name: c.String("path"), Stage: c.Name}
		if format == "csv" {
			d := c.String("delimiter")
			if len(d) != 1 {
				return nil, c.Errorf("delimiter", "must be one character, found %q", d)
			}
			opts.Delimiter = rune(d[0])
			opts.NullValues = c.Strings("null_values")
			if opts.NullValues == nil {
				opts.NullValues = []string{}
			}
			opts.OnBadRow = c.String("on_bad_row")
			opts.SampleRows = c.Int("sample_rows")
			if decl := c.Table("schema"); decl != nil {
				names := make([]string, 0, len(decl))
				for k := range decl {
					names = append(names, k)
				}
				sort.Strings(names)
				var fields []arrow.Field
				for _, name := range names {
					ts, ok := decl[name].(string)
					dt, known := csvTypes[ts]
					if !ok || !known {
						return nil, c.Errorf("schema."+name, "unknown column type %v (use int64, int32, float64, float32, bool or string)", decl[name])
					}
					fields = append(fields, arrow.Field{Name: name, Type: dt, Nullable: true})
				}
				opts.Schema = arrow.NewSchema(fields, nil)
			}
		}
		src := &fileSource{path: path, display: c.String("path"), opts: opts}
		return sourceWithOptions(c, src.open), nil
	}
}

type fileSource struct {
	path, display string
	opts          tableio.CSVOptions
}

func (f *fileSource) open(ctx context.Context, sc *pipeline.StageContext) (pipeline.RecordReader, func() int64, error) {
	r, err := f.openReader(ctx, sc.Mem, sc.CPU)
	if err != nil {
		return nil, nil, err
	}
	for _, msg := range r.Warnings() {
		warnNote(sc, "%s", msg)
	}
	skipped := func() int64 {
		if s, ok := r.inner.(interface{ SkippedRows() int64 }); ok {
			return s.SkippedRows()
		}
		return 0
	}
	return r, skipped, nil
}

// cpuFunc takes tokens of the run's CPU budget, as StageContext.CPU does.
type cpuFunc func(ctx context.Context, want int) (n int, release func(), err error)

// openReader opens the file with parser goroutines taken from cpu. The parsers run until the
// input is parsed, so the tokens are held until then: they are given back when the reader
// ends (Next returns false, at the end or on an error) or is released, whichever comes first.
func (f *fileSource) openReader(ctx context.Context, mem memory.Allocator, cpu cpuFunc) (*cpuHeldReader, error) {
	opts := f.opts
	n, release, err := cpu(ctx, 2)
	if err != nil {
		return nil, err
	}
	opts.Workers = n
	r, err := tableio.OpenFile(f.path, mem, opts)
	if err != nil {
		release()
		return nil, err
	}
	return &cpuHeldReader{inner: r, release: release}, nil
}

// cpuHeldReader holds CPU tokens for the parsers of the reader it wraps, until that reader
// ends or is released.
type cpuHeldReader struct {
	inner   tableio.Reader
	release func() // safe to call more than once
}

func (c *cpuHeldReader) Schema() *arrow.Schema          { return c.inner.Schema() }
func (c *cpuHeldReader) RecordBatch() arrow.RecordBatch { return c.inner.RecordBatch() }
func (c *cpuHeldReader) Err() error                     { return c.inner.Err() }

// Warnings forwards the wrapped reader's warnings (a CSV file's suspect delimiter).
func (c *cpuHeldReader) Warnings() []string {
	if w, ok := c.inner.(interface{ Warnings() []string }); ok {
		return w.Warnings()
	}
	return nil
}

func (c *cpuHeldReader) Next() bool {
	if c.inner.Next() {
		return true
	}
	c.release()
	return false
}

func (c *cpuHeldReader) Release() {
	c.inner.Release()
	c.release()
}

type opener func(ctx context.Context, sc *pipeline.StageContext) (pipeline.RecordReader, func() int64, error)

// sourceWithOptions wraps an opener with the options every source shares: target roles,
// ignored columns, limit and sampling, skipped-row counting.
func sourceWithOptions(c *pipeline.StageConfig, open opener) pipeline.Stage {
	targets := c.Strings(fTarget)
	targetsSet := c.IsSet(fTarget)
	ignore := c.Strings(fIgnore)
	limit := int64(c.Int(fLimit))
	random := c.String(fSample) == "random"
	return pipeline.SourceStage(pipeline.SourceFunc(func(ctx context.Context, sc *pipeline.StageContext) (pipeline.RecordReader, error) {
		// A random sample counts the rows first, in a pass of its own: the reader of that pass
		// gives its CPU back before the main reader takes some.
		var total int64
		if limit > 0 && random {
			var err error
			if total, err = countRows(ctx, sc, open); err != nil {
				return nil, err
			}
		}
		r, skipped, err := open(ctx, sc)
		if err != nil {
			return nil, err
		}
		out, err := withRoles(r, targets, targetsSet, ignore)
		if err != nil {
			de := &pipeline.DataError{Stage: sc.Name, Msg: err.Error()}
			if w, ok := r.(interface{ Warnings() []string }); ok && len(w.Warnings()) > 0 {
				de.Hint = strings.Join(w.Warnings(), "; ") // a wrong delimiter, say
			}
			r.Release()
			return nil, de
		}
		var rr pipeline.RecordReader = out
		if limit > 0 {
			if random {
				rr = &sampleReader{in: rr, mem: sc.Mem, want: limit, total: total, rng: sc.Rand(0)}
				sc.SetInfo("sample", map[string]any{"rows": min(limit, total), "of": total, "method": "seeded selection sampling (Knuth's algorithm S)"})
			} else {
				rr = &headReader{in: rr, mem: sc.Mem, left: limit}
			}
		}
		return &countingReader{RecordReader: rr, onEnd: func() {
			if n := skipped(); n > 0 {
				sc.SetInfo("skipped_rows", n)
				sc.Metrics.Set("skipped_rows", float64(n))
				sc.Log.Warn().Int64("rows", n).Msg("skipped malformed rows (on_bad_row = \"skip\")")
			}
		}}, nil
	}))
}

type countingReader struct {
	pipeline.RecordReader
	onEnd func()
	ended bool
}

func (c *countingReader) Next() bool {
	ok := c.RecordReader.Next()
	if !ok && !c.ended {
		c.ended = true
		c.onEnd()
	}
	return ok
}

func countRows(ctx context.Context, sc *pipeline.StageContext, open opener) (int64, error) {
	r, _, err := open(ctx, sc)
	if err != nil {
		return 0, err
	}
	defer r.Release()
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	return n, r.Err()
}

// roleReader rewrites the schema of each batch: target roles set, ignored columns dropped.
type roleReader struct {
	in   pipeline.RecordReader
	out  *arrow.Schema
	keep []int
	cur  arrow.RecordBatch
}

func withRoles(in pipeline.RecordReader, targets []string, explicit bool, ignore []string) (*roleReader, error) {
	s := in.Schema()
	isTarget := map[string]bool{}
	for _, t := range targets {
		if s.FieldIndices(t) == nil {
			if explicit {
				return nil, fmt.Errorf("target column %q is not in the input (%s)", t, columnsHint(t, s))
			}
			continue
		}
		isTarget[t] = true
	}
	drop := map[string]bool{}
	for _, c := range ignore {
		if s.FieldIndices(c) == nil {
			return nil, fmt.Errorf("ignored column %q is not in the input (%s)", c, columnsHint(c, s))
		}
		drop[c] = true
	}
	var fields []arrow.Field
	var keep []int
	for i, f := range s.Fields() {
		if drop[f.Name] {
			continue
		}
		if isTarget[f.Name] {
			f = schema.WithRole(f, schema.RoleTarget)
		}
		fields = append(fields, f)
		keep = append(keep, i)
	}
	md := s.Metadata()
	return &roleReader{in: in, out: arrow.NewSchema(fields, &md), keep: keep}, nil
}

// columnList joins a schema's column names for a message: the first 20, then how many more,
// so that a table of 784 pixel columns does not flood it.
func columnList(s *arrow.Schema) string { return pipeline.ListNames(fieldNames(s), 20) }

// columnsHint is what a message about a missing column says: a close name if there is one,
// and the columns there are.
func columnsHint(name string, s *arrow.Schema) string {
	hint := "columns: " + columnList(s)
	if sg := pipeline.Suggest(name, fieldNames(s)); sg != "" {
		hint = fmt.Sprintf("did you mean %q? %s", sg, hint)
	}
	return hint
}

func fieldNames(s *arrow.Schema) []string {
	out := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		out[i] = f.Name
	}
	return out
}

func (r *roleReader) Schema() *arrow.Schema { return r.out }
func (r *roleReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if !r.in.Next() {
		return false
	}
	rec := r.in.RecordBatch()
	cols := make([]arrow.Array, len(r.keep))
	for i, k := range r.keep {
		cols[i] = rec.Column(k)
	}
	r.cur = array.NewRecordBatch(r.out, cols, rec.NumRows())
	return true
}
func (r *roleReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *roleReader) Err() error                     { return r.in.Err() }
func (r *roleReader) Release() {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	r.in.Release()
}

// headReader passes the first rows through.
type headReader struct {
	in   pipeline.RecordReader
	mem  memory.Allocator
	left int64
	cur  arrow.RecordBatch
}

func (h *headReader) Schema() *arrow.Schema { return h.in.Schema() }
func (h *headReader) Next() bool {
	if h.cur != nil {
		h.cur.Release()
		h.cur = nil
	}
	if h.left <= 0 || !h.in.Next() {
		return false
	}
	rec := h.in.RecordBatch()
	n := min(rec.NumRows(), h.left)
	h.cur = rec.NewSlice(0, n)
	h.left -= n
	return true
}
func (h *headReader) RecordBatch() arrow.RecordBatch { return h.cur }
func (h *headReader) Err() error                     { return h.in.Err() }
func (h *headReader) Release() {
	if h.cur != nil {
		h.cur.Release()
	}
	h.in.Release()
}

// sampleReader keeps a uniform random subset of want rows out of total, in input order, by
// selection sampling: each row is kept with probability (want - kept) / (total - seen).
type sampleReader struct {
	in                pipeline.RecordReader
	mem               memory.Allocator
	want, total, seen int64
	kept              int64
	rng               interface{ Float64() float64 }
	cur               arrow.RecordBatch
	err               error
}

func (s *sampleReader) Schema() *arrow.Schema { return s.in.Schema() }
func (s *sampleReader) Next() bool {
	if s.cur != nil {
		s.cur.Release()
		s.cur = nil
	}
	for s.kept < s.want && s.in.Next() {
		rec := s.in.RecordBatch()
		var idx []int
		for i := 0; i < int(rec.NumRows()); i++ {
			if float64(s.total-s.seen)*s.rng.Float64() < float64(s.want-s.kept) {
				idx = append(idx, i)
				s.kept++
			}
			s.seen++
		}
		if len(idx) == 0 {
			continue
		}
		out, err := arrowutil.Take(s.mem, rec, idx)
		if err != nil {
			s.err = err
			return false
		}
		s.cur = out
		return true
	}
	return false
}
func (s *sampleReader) RecordBatch() arrow.RecordBatch { return s.cur }
func (s *sampleReader) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.in.Err()
}
func (s *sampleReader) Release() {
	if s.cur != nil {
		s.cur.Release()
	}
	s.in.Release()
}
