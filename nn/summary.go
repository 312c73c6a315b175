package nn

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// SummaryRow describes one layer of a model.
type SummaryRow struct {
	Layer  string
	Kind   string
	Output []int // per-row output shape (the batch dimension is omitted)
	Params int   // trainable scalars owned by the layer (tied weights count at their owner)
	Share  float64
}

// Summary describes a model layer by layer (embeddings, trunk, heads) with its parameter
// count, plus warnings.
type Summary struct {
	Rows  []SummaryRow
	Total int
	// Warnings holds at most one line: it names the layer (an embedding, a trunk layer or a
	// head) that holds more than 90% of the parameters, when that layer has more than a
	// million of them. A small model, whatever its shape, is not flagged.
	Warnings []string
}

// A layer is flagged by Summary when it holds more than lopsidedShare of the parameters and
// more than lopsidedParams of them.
const (
	lopsidedShare  = 0.9
	lopsidedParams = 1_000_000
)

// Summary returns the model's summary.
func (m *Model) Summary() Summary {
	var s Summary
	add := func(name, kind string, out int, params int) {
		s.Rows = append(s.Rows, SummaryRow{Layer: name, Kind: kind, Output: []int{out}, Params: params})
		s.Total += params
	}
	for _, e := range m.embeds {
		add(e.spec.Name, "embedding", e.spec.Dim, e.w.Size())
	}
	shape := m.spec.InputShape
	for _, l := range m.layers {
		n := 0
		for _, p := range l.params() {
			n += p.Size()
		}
		add(l.name(), l.kind(), l.outWidth(), n)
		// An image layer, and an elementwise layer on an image, outputs [C, H, W].
		if shape = imageShapeAfter(l, shape); shape != nil {
			s.Rows[len(s.Rows)-1].Output = append([]int(nil), shape...)
		}
	}
	for _, h := range m.heads {
		n := 0
		for _, p := range h.params() {
			n += p.Size()
		}
		out := h.k
		if h.spec.Kind == HeadBinary {
			out = 2
		}
		add(h.lin.lname, "head:"+h.spec.Kind, out, n)
	}
	for i := range s.Rows {
		if s.Total > 0 {
			s.Rows[i].Share = float64(s.Rows[i].Params) / float64(s.Total)
		}
		if r := s.Rows[i]; r.Share > lopsidedShare && r.Params > lopsidedParams {
			s.Warnings = append(s.Warnings, lopsidedWarning(r, s.Total))
		}
	}
	return s
}

// lopsidedWarning says what to do about a layer that holds most of a large model.
func lopsidedWarning(r SummaryRow, total int) string {
	what, fix := "layer", "a narrower layer, or a bottleneck before it, shrinks it"
	switch {
	case r.Kind == "embedding":
		what, fix = "embedding", "a smaller embedding_dim, or fewer categories (merge the rare ones before encoding), shrinks it"
	case strings.HasPrefix(r.Kind, "head:"):
		what, fix = "head", "a narrower last trunk layer shrinks it"
	}
	return fmt.Sprintf("%s %s holds %.0f%% of the model's %d parameters (%d): %s", what, r.Layer, 100*r.Share, total, r.Params, fix)
}

// String formats the summary as Table does, followed by the warnings.
func (s Summary) String() string {
	var b strings.Builder
	b.WriteString(s.Table())
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

// Table formats the summary as an aligned text table followed by the total, without the
// warnings (for a caller that reports them on their own).
func (s Summary) Table() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "layer\tkind\toutput\tparams\tshare")
	for _, r := range s.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%.1f%%\n", r.Layer, r.Kind, r.Output, r.Params, 100*r.Share)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "total trainable parameters: %d\n", s.Total)
	return b.String()
}
