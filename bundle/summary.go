package bundle

import (
	"fmt"
	"sort"
	"strings"
)

// Summary describes a predictor for people: where it came from, its inputs, targets and
// preprocessing, and its network (every member's, for an ensemble, with the combiners).
func Summary(p Predictor) string {
	var b strings.Builder
	base := p.Base()
	m := base.Meta
	if m.Stage != "" || m.Pipeline != "" {
		fmt.Fprintf(&b, "bundle: %s of stage %q", m.Kind, m.Stage)
		if m.Pipeline != "" {
			fmt.Fprintf(&b, " (pipeline %s)", m.Pipeline)
		}
		b.WriteString("\n")
	}
	switch {
	case m.Partial:
		b.WriteString("PARTIAL: the best-so-far weights of a training that was interrupted\n")
	case m.FormatVersion < 2 && base.Dir != "":
		fmt.Fprintf(&b, "format version %d: no checksums, the files were not verified\n", m.FormatVersion)
	}
	plan := p.InputPlan()
	fmt.Fprintf(&b, "inputs: %d raw columns; network: %d numeric, %d categorical (embeddings)\n", len(m.Input), plan.Width(), len(plan.Categorical))
	for _, t := range plan.Tensors {
		fmt.Fprintf(&b, "tensor input %q: %s\n", t.Column, t.ShapeString())
	}
	for _, t := range plan.Targets {
		switch t.Task {
		case TaskRegression:
			fmt.Fprintf(&b, "target %s: regression (head %s)\n", t.Column, t.Head)
		default:
			fmt.Fprintf(&b, "target %s: %s, %d classes (head %s)\n", t.Column, t.Task, len(t.Labels), t.Head)
		}
	}
	for _, s := range p.PreSteps() {
		fmt.Fprintf(&b, "preprocessing: %s (fitted by stage %s)\n", s.Kind, s.Stage)
	}
	switch x := p.(type) {
	case *Bundle:
		b.WriteString(x.Model.Summary().String())
	case *EnsembleBundle:
		heads := make([]string, 0, len(x.Meta.Combiners))
		for h := range x.Meta.Combiners {
			heads = append(heads, h)
		}
		sort.Strings(heads)
		models, names := x.Ens.Models(), x.Ens.Names()
		fmt.Fprintf(&b, "ensemble: %d members", len(models))
		for _, h := range heads {
			fmt.Fprintf(&b, "; head %s combined by %s", h, x.Meta.Combiners[h])
		}
		b.WriteString("\n")
		for i, mm := range models {
			fmt.Fprintf(&b, "\nmember %d (%s):\n", i, names[i])
			b.WriteString(mm.Summary().String())
		}
	}
	return b.String()
}
