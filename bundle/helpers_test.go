package bundle

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/nn"
	"github.com/pipe-ml/pipe/schema"
)

// col is one column of a test table: a name, a role, and its values ([]float64, []int64,
// []string, []bool or []int32), with nil entries in nulls marking nulls.
type col struct {
	name  string
	role  string
	vals  any
	nulls []int
	meta  map[string]string
}

// record builds a batch from columns; the caller releases it.
func record(t testing.TB, mem memory.Allocator, cols ...col) arrow.RecordBatch {
	t.Helper()
	var fields []arrow.Field
	var arrs []arrow.Array
	rows := -1
	for _, c := range cols {
		isNull := map[int]bool{}
		for _, i := range c.nulls {
			isNull[i] = true
		}
		var a arrow.Array
		var typ arrow.DataType
		switch v := c.vals.(type) {
		case []float64:
			b := array.NewFloat64Builder(mem)
			for i, x := range v {
				if isNull[i] {
					b.AppendNull()
				} else {
					b.Append(x)
				}
			}
			a, typ = b.NewArray(), arrow.PrimitiveTypes.Float64
			b.Release()
		case []int64:
			b := array.NewInt64Builder(mem)
			for i, x := range v {
				if isNull[i] {
					b.AppendNull()
				} else {
					b.Append(x)
				}
			}
			a, typ = b.NewArray(), arrow.PrimitiveTypes.Int64
			b.Release()
		case []int32:
			b := array.NewInt32Builder(mem)
			for i, x := range v {
				if isNull[i] {
					b.AppendNull()
				} else {
					b.Append(x)
				}
			}
			a, typ = b.NewArray(), arrow.PrimitiveTypes.Int32
			b.Release()
		case []string:
			b := array.NewStringBuilder(mem)
			for i, x := range v {
				if isNull[i] {
					b.AppendNull()
				} else {
					b.Append(x)
				}
			}
			a, typ = b.NewArray(), arrow.BinaryTypes.String
			b.Release()
		case []bool:
			b := array.NewBooleanBuilder(mem)
			for i, x := range v {
				if isNull[i] {
					b.AppendNull()
				} else {
					b.Append(x)
				}
			}
			a, typ = b.NewArray(), arrow.FixedWidthTypes.Boolean
			b.Release()
		default:
			t.Fatalf("column %s: unsupported %T", c.name, c.vals)
		}
		f := arrow.Field{Name: c.name, Type: typ, Nullable: true}
		if len(c.meta) > 0 {
			keys, vals := []string{}, []string{}
			for k, v := range c.meta {
				keys, vals = append(keys, k), append(vals, v)
			}
			f.Metadata = arrow.NewMetadata(keys, vals)
		}
		if c.role != "" {
			f = schema.WithRole(f, c.role)
		}
		fields = append(fields, f)
		arrs = append(arrs, a)
		if rows >= 0 && a.Len() != rows {
			t.Fatalf("column %s has %d rows, others %d", c.name, a.Len(), rows)
		}
		rows = a.Len()
	}
	rec := array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(rows))
	for _, a := range arrs {
		a.Release()
	}
	return rec
}

// reader returns a record reader over batches (it retains them; release it).
func reader(t testing.TB, recs ...arrow.RecordBatch) array.RecordReader {
	t.Helper()
	r, err := array.NewRecordReader(recs[0].Schema(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// shiftTransform adds a constant to one float64 column; it counts the rows it saw under
// "unknown_by_column/<col>" for negative values, to exercise Predict's report.
type shiftTransform struct {
	Column string  `json:"column"`
	By     float64 `json:"by"`
	seen   *atomic.Int64
}

func newShift(col string, by float64) *shiftTransform {
	return &shiftTransform{Column: col, By: by, seen: new(atomic.Int64)}
}

func (s *shiftTransform) Kind() string { return "shift" }

func (s *shiftTransform) Marshal() ([]byte, error) { return json.Marshal(s) }

func (s *shiftTransform) Counters() map[string]int64 {
	return map[string]int64{"unknown_by_column/" + s.Column: s.seen.Load()}
}

func (s *shiftTransform) Apply(_ context.Context, mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	idx := rec.Schema().FieldIndices(s.Column)
	if idx == nil {
		return nil, fmt.Errorf("shift: no column %q", s.Column)
	}
	in, ok := rec.Column(idx[0]).(*array.Float64)
	if !ok {
		return nil, fmt.Errorf("shift: column %q is %s", s.Column, rec.Column(idx[0]).DataType())
	}
	b := array.NewFloat64Builder(mem)
	defer b.Release()
	for i := 0; i < in.Len(); i++ {
		if in.Value(i) < 0 {
			s.seen.Add(1)
		}
		b.Append(in.Value(i) + s.By)
	}
	out := b.NewArray()
	defer out.Release()
	cols := append([]arrow.Array(nil), rec.Columns()...)
	cols[idx[0]] = out
	return array.NewRecordBatch(rec.Schema(), cols, rec.NumRows()), nil
}

func shiftDecoders(t testing.TB) *Decoders {
	d := NewDecoders()
	if err := d.Register("shift", func(state []byte) (Transform, error) {
		s := newShift("", 0)
		if err := json.Unmarshal(state, s); err != nil {
			return nil, err
		}
		return s, nil
	}); err != nil {
		t.Fatal(err)
	}
	return d
}

// smallModel builds a seeded 2-input network with the plan's heads.
func smallModel(t testing.TB, plan *InputPlan) *nn.Model {
	t.Helper()
	m, err := nn.Build(nn.Spec{NumInputs: len(plan.Numeric), Layers: []nn.LayerSpec{{Type: "dense", Units: 4, Activation: "relu"}}, Heads: plan.Heads()},
		rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
