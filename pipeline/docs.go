package pipeline

import (
	"fmt"
	"sort"
	"strings"
)

// Docs renders the reference of the given kinds (all when none is named) as Markdown,
// generated from their specs: the README's stage reference and `pipe docs` both use it.
func Docs(reg *Registry, kinds ...string) (string, error) {
	var list []*KindSpec
	if len(kinds) == 0 {
		list = reg.Kinds()
	} else {
		for _, k := range kinds {
			spec, ok := reg.Kind(k)
			if !ok {
				hint := ""
				if s := Suggest(k, reg.kindNames()); s != "" {
					hint = fmt.Sprintf(" (did you mean %q?)", s)
				}
				return "", fmt.Errorf("unknown stage kind %q%s; kinds: %s", k, hint, strings.Join(reg.kindNames(), ", "))
			}
			list = append(list, spec)
		}
	}
	var b strings.Builder
	if len(kinds) == 0 {
		b.WriteString("### `[pipeline]`\n\n")
		writeFields(&b, pipelineSpec())
		b.WriteString("### Keys of every stage\n\nEvery `[stages.<name>]` table holds these beside its kind's fields.\n\n")
		writeFields(&b, CommonFields())
	}
	for _, k := range list {
		fmt.Fprintf(&b, "### `%s` (%s)\n\n%s\n\n", k.Kind, k.Shape, strings.TrimSpace(k.Doc))
		writeFields(&b, k.Fields)
		fmt.Fprintf(&b, "Outputs: %s\n\n", outputsDoc(k))
		if k.Example != "" {
			fmt.Fprintf(&b, "```toml\n%s\n```\n\n", strings.TrimSpace(k.Example))
		}
	}
	return b.String(), nil
}

func writeFields(b *strings.Builder, fields []Field) {
	if len(fields) == 0 {
		return
	}
	b.WriteString("| field | type | default | doc |\n| --- | --- | --- | --- |\n")
	sorted := append([]Field(nil), fields...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Required && !sorted[j].Required })
	for _, f := range FlattenFields(sorted) {
		def := "—"
		switch {
		case f.Required:
			def = "required"
		case f.Default != nil:
			def = fmt.Sprintf("`%v`", formatDefault(f.Default))
		}
		doc := f.Doc
		if len(f.Enum) > 0 {
			doc += " One of: " + strings.Join(quoteAll(f.Enum), ", ") + "."
		}
		if f.Min != nil || f.Max != nil {
			lo, hi := "[", "]"
			if f.MinExclusive {
				lo = "("
			}
			if f.MaxExclusive {
				hi = ")"
			}
			switch {
			case f.Min != nil && f.Max != nil:
				doc += fmt.Sprintf(" Range %s%v, %v%s.", lo, *f.Min, *f.Max, hi)
			case f.Min != nil && f.MinExclusive:
				doc += fmt.Sprintf(" Above %v.", *f.Min)
			case f.Min != nil:
				doc += fmt.Sprintf(" At least %v.", *f.Min)
			case f.MaxExclusive:
				doc += fmt.Sprintf(" Below %v.", *f.Max)
			default:
				doc += fmt.Sprintf(" At most %v.", *f.Max)
			}
		}
		typ := f.Type.String()
		if f.Type == TypeInput || f.Type == TypeInputs {
			typ += " (" + f.Port.String() + ")"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", f.Name, typ, def, strings.ReplaceAll(doc, "|", "\\|"))
	}
	b.WriteString("\n")
}

func formatDefault(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case []string:
		return "[" + strings.Join(quoteAll(x), ", ") + "]"
	}
	return fmt.Sprint(v)
}

// outputsDoc describes a kind's output ports: its OutputsDoc, or else the ports of a stage of
// that kind with every field at its default (the default port marked when there are several).
func outputsDoc(k *KindSpec) string {
	if d := strings.TrimSpace(k.OutputsDoc); d != "" {
		return d
	}
	ports := []Port{{Name: "out", Kind: PortTable}}
	if k.Outputs != nil {
		d := &decoder{stage: k.Kind, pos: map[string]position{}}
		vals, set, _ := d.table("", "", map[string]any{}, k.Fields, nil) // missing required keys do not matter here
		ports = k.Outputs(&StageConfig{Name: k.Kind, Kind: k.Kind, Spec: k, values: vals, set: set, refs: map[string][]Ref{}})
	}
	if len(ports) == 0 {
		return "none (a sink)."
	}
	def := k.DefaultOutput
	if def == "" {
		def = ports[0].Name
	}
	parts := make([]string, len(ports))
	sep := ", "
	for i, p := range ports {
		what := p.Kind.String()
		if len(ports) > 1 && p.Name == def {
			what += ", the default"
		}
		parts[i] = fmt.Sprintf("`%s` (%s)", p.Name, what)
		if p.Doc != "" {
			parts[i] += ": " + p.Doc
			sep = "; " // a port's doc may hold commas
		}
	}
	return strings.Join(parts, sep) + "."
}
