package pipeline

import (
	"fmt"
	"strings"
)

// DOT renders the pipeline's DAG in Graphviz DOT. Table edges are solid, artifact edges dashed.
func (p *Pipeline) DOT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", p.Name)
	for _, s := range p.Stages {
		fmt.Fprintf(&b, "  %q [label=\"%s\\n(%s)\"];\n", s.Name, s.Name, s.Kind)
	}
	for _, s := range p.Stages {
		for _, f := range s.Spec.Fields {
			for _, r := range s.refs[f.Name] {
				style := ""
				if r.Kind == PortArtifact {
					style = ", style=dashed"
				}
				fmt.Fprintf(&b, "  %q -> %q [label=%q%s];\n", r.Stage, s.Name, r.Port+" → "+f.Name, style)
			}
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// Mermaid renders the pipeline's DAG as a Mermaid flowchart.
func (p *Pipeline) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := func(n string) string { return strings.NewReplacer("-", "_").Replace(n) }
	for _, s := range p.Stages {
		fmt.Fprintf(&b, "  %s[\"%s<br/><i>%s</i>\"]\n", id(s.Name), s.Name, s.Kind)
	}
	for _, s := range p.Stages {
		for _, f := range s.Spec.Fields {
			for _, r := range s.refs[f.Name] {
				arrow := "-->"
				if r.Kind == PortArtifact {
					arrow = "-.->"
				}
				fmt.Fprintf(&b, "  %s %s|%s| %s\n", id(r.Stage), arrow, r.Port, id(s.Name))
			}
		}
	}
	return b.String()
}
