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
// count, plus warnings (a single dense layer holding more than half of the parameters).
type Summary struct {
	Rows     []SummaryRow
	Total    int
	Warnings []string
}

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
	for _, l := range m.layers {
		n := 0
		for _, p := range l.params() {
			n += p.Size()
		}
		add(l.name(), l.kind(), l.outWidth(), n)
	}
	for _, h := range m.heads {
		n := 0
		for _, p := range h.lin.params() {
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
		r := s.Rows[i]
		if (r.Kind == LayerDense || strings.HasPrefix(r.Kind, "head:")) && r.Share > 0.5 {
			s.Warnings = append(s.Warnings, fmt.Sprintf("layer %s holds %.0f%% of the %d parameters: consider a narrower layer or an embedding/bottleneck before it", r.Layer, 100*r.Share, s.Total))
		}
	}
	return s
}

// String formats the summary as an aligned text table followed by the total and warnings.
func (s Summary) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "layer\tkind\toutput\tparams\tshare")
	for _, r := range s.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%.1f%%\n", r.Layer, r.Kind, r.Output, r.Params, 100*r.Share)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "total trainable parameters: %d\n", s.Total)
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}
