package bundle

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/nn"
)

// Predictor is a trained model that scores tables: a single-model *Bundle, or an
// *EnsembleBundle.
type Predictor interface {
	// ArtifactKind is "bundle" or "ensemble".
	ArtifactKind() string
	// InputPlan says how a preprocessed table becomes the network's input, and the targets.
	InputPlan() *InputPlan
	// PreSteps lists the fitted preprocessing chain, oldest first.
	PreSteps() []PreStep
	// PreprocessFrom applies the chain from step `from` on. It does not release rec; the
	// caller releases the result.
	PreprocessFrom(ctx context.Context, mem memory.Allocator, rec arrow.RecordBatch, from int) (arrow.RecordBatch, error)
	// Forward returns per-head outputs for an input batch (probabilities, or standardised
	// regression values). It is not safe for concurrent use: Clone first.
	Forward(b nn.Batch) (nn.Outputs, error)
	// Clone returns a copy that may run concurrently with the original: weights and
	// activation buffers are copied, fitted transforms shared.
	Clone() (Predictor, error)
	// Base is the bundle's shared description and preprocessing.
	Base() *Bundle
}

// CloneModel returns a copy of m with its own weights and buffers.
func CloneModel(m *nn.Model) (*nn.Model, error) {
	c, err := nn.Build(m.Spec(), rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, err
	}
	if _, err := c.InitFrom(m); err != nil {
		return nil, err
	}
	for _, h := range m.Heads() {
		if w := m.ClassWeights(h.Name); w != nil {
			if err := c.SetClassWeights(h.Name, w); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// ForwardAll runs the network over every row of t in chunks and concatenates the outputs.
func ForwardAll(p Predictor, t *Tensors) (nn.Outputs, error) {
	rows := len(t.RowIDs)
	w := t.Data.NumInputs
	const chunk = 4096
	var all nn.Outputs
	for start := 0; start < rows; start += chunk {
		end := min(start+chunk, rows)
		b := nn.Batch{Rows: end - start, X: t.Data.X[start*w : end*w]}
		for _, c := range t.Data.Cat {
			b.Cat = append(b.Cat, c[start:end])
		}
		out, err := p.Forward(b)
		if err != nil {
			return nn.Outputs{}, err
		}
		if all.Heads == nil {
			all.Heads = make([][]float32, len(out.Heads))
			all.Width = append([]int(nil), out.Width...)
		}
		for h := range out.Heads {
			all.Heads[h] = append(all.Heads[h], out.Heads[h]...)
		}
	}
	return all, nil
}

// PredictionFields are the columns a prediction has for one target: <target>_pred (the class,
// or the value in the target's unit) and, for classes, <target>_prob_<class> per class.
func PredictionFields(t TargetPlan) []arrow.Field {
	var fs []arrow.Field
	switch t.Task {
	case TaskRegression:
		fs = append(fs, arrow.Field{Name: t.Column + "_pred", Type: arrow.PrimitiveTypes.Float64})
	default:
		predType := arrow.DataType(arrow.BinaryTypes.String)
		if t.Integer {
			predType = arrow.PrimitiveTypes.Int64
		}
		fs = append(fs, arrow.Field{Name: t.Column + "_pred", Type: predType})
		for _, l := range t.Labels {
			fs = append(fs, arrow.Field{Name: t.Column + "_prob_" + l, Type: arrow.PrimitiveTypes.Float32})
		}
	}
	return fs
}

// PredictionSchema is the schema of prediction batches: _row, then the kept columns, then
// each target's PredictionFields.
func PredictionSchema(plan *InputPlan, keep []arrow.Field) *arrow.Schema {
	fields := []arrow.Field{{Name: "_row", Type: arrow.PrimitiveTypes.Int64}}
	fields = append(fields, keep...)
	for _, tp := range plan.Targets {
		fields = append(fields, PredictionFields(tp)...)
	}
	return arrow.NewSchema(fields, nil)
}

// PredictionBatch builds the prediction batch of rows [start, end) of the outputs, with schema
// s (PredictionSchema) and keep holding the kept columns' values for those rows (already
// sliced). The caller releases the result.
func PredictionBatch(mem memory.Allocator, plan *InputPlan, s *arrow.Schema, ids []int64, keep []arrow.Array, out nn.Outputs, start, end int) (arrow.RecordBatch, error) {
	rows := end - start
	ib := array.NewInt64Builder(mem)
	defer ib.Release()
	ib.AppendValues(ids[start:end], nil)
	cols := []arrow.Array{ib.NewArray()}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	for _, k := range keep {
		if k.Len() != rows {
			return nil, fmt.Errorf("bundle: kept column has %d rows, want %d", k.Len(), rows)
		}
		k.Retain()
		cols = append(cols, k)
	}
	for h, tp := range plan.Targets {
		w := out.Width[h]
		cols = append(cols, predictionColumns(mem, tp, out.Heads[h][start*w:end*w], w, rows)...)
	}
	return array.NewRecordBatch(s, cols, int64(rows)), nil
}

// predictionColumns builds the prediction columns of one target from head outputs (rows × w).
func predictionColumns(mem memory.Allocator, t TargetPlan, out []float32, w, rows int) []arrow.Array {
	var cols []arrow.Array
	switch t.Task {
	case TaskRegression:
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		for i := 0; i < rows; i++ {
			b.Append(float64(out[i*w])*t.Std + t.Mean)
		}
		cols = append(cols, b.NewArray())
	default:
		k := len(t.Labels)
		if t.Integer {
			b := array.NewInt64Builder(mem)
			defer b.Release()
			for i := 0; i < rows; i++ {
				v, _ := strconv.ParseInt(t.Labels[Argmax(out[i*w:i*w+k])], 10, 64)
				b.Append(v)
			}
			cols = append(cols, b.NewArray())
		} else {
			b := array.NewStringBuilder(mem)
			defer b.Release()
			for i := 0; i < rows; i++ {
				b.Append(t.Labels[Argmax(out[i*w:i*w+k])])
			}
			cols = append(cols, b.NewArray())
		}
		for c := 0; c < k; c++ {
			b := array.NewFloat32Builder(mem)
			for i := 0; i < rows; i++ {
				b.Append(out[i*w+c])
			}
			cols = append(cols, b.NewArray())
			b.Release()
		}
	}
	return cols
}

// Argmax is the index of the largest value (the first of ties).
func Argmax(p []float32) int {
	best, bi := float32(math.Inf(-1)), 0
	for i, v := range p {
		if v > best {
			best, bi = v, i
		}
	}
	return bi
}
