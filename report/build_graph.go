package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// readConfig reads the run's resolved pipeline.toml generically (no registry): its stage
// tables by name. A missing file leaves the graph without edges; an unreadable one also sets
// configErr.
func (b *builder) readConfig() {
	path := filepath.Join(b.dir, "pipeline.toml")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		var doc map[string]any
		if err = toml.Unmarshal(data, &doc); err == nil {
			stages, _ := doc["stages"].(map[string]any)
			b.config = map[string]map[string]any{}
			for name, t := range stages {
				if tab, ok := t.(map[string]any); ok {
					b.config[name] = tab
				}
			}
			return
		}
	}
	b.configErr = fmt.Sprintf("report: pipeline.toml left out (the DAG has no edges): %v", err)
}

// graph builds the DAG: a node per stage, an edge per input reference, and the layout.
//
// An edge is read from the resolved config without the registry: every string, or string in
// an array, of a stage table's top-level keys (kind aside) that names another stage, as
// "<stage>" or "<stage>.<port>", is an input reference of that key (Edge.From names the port
// when the reference leaves it out and the stage has a single output). A port must be one the
// manifest lists for the stage when it lists any. (A plain string value that happens to equal
// another stage's name is therefore taken for a reference: name stages apart from values.)
// Layers are the longest path from a source (a stage without inputs), rows the order within
// a layer.
func (b *builder) graph() Graph {
	var extra []string
	for n := range b.config { // a stage of the config the manifest lacks (an old manifest)
		if _, ok := b.m.Stages[n]; !ok {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	names := append(b.order(), extra...)
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	var edges []Edge
	seen := map[Edge]bool{}
	preds := map[string][]string{}
	for _, to := range names {
		tab := b.config[to]
		keys := make([]string, 0, len(tab))
		for k := range tab {
			if k != "kind" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, key := range keys {
			for _, ref := range stringsOf(tab[key]) {
				from, ok := b.reference(ref, to, known)
				if !ok {
					continue
				}
				e := Edge{From: b.port(ref), To: to + "." + key}
				if seen[e] {
					continue
				}
				seen[e] = true
				edges = append(edges, e)
				preds[to] = append(preds[to], from)
			}
		}
	}
	layer := map[string]int{}
	var depth func(n string, path map[string]bool) int
	depth = func(n string, path map[string]bool) int {
		if l, ok := layer[n]; ok {
			return l
		}
		if path[n] { // a cycle: a valid pipeline has none
			return 0
		}
		path[n] = true
		l := 0
		for _, p := range preds[n] {
			l = max(l, depth(p, path)+1)
		}
		delete(path, n)
		layer[n] = l
		return l
	}
	g := Graph{Edges: edges}
	rows := map[int]int{}
	for _, n := range names {
		l := depth(n, map[string]bool{})
		node := Node{Stage: n, Layer: l, Row: rows[l]}
		rows[l]++
		if s, ok := b.m.Stages[n]; ok {
			node.Kind, node.Status = s.Kind, b.stageStatus(s)
		} else {
			node.Kind = jsonString(b.config[n]["kind"])
		}
		g.Nodes = append(g.Nodes, node)
	}
	return g
}

// reference reports whether ref names a stage other than self ("<stage>" or
// "<stage>.<port>", the port one the manifest lists for it when it lists any), and which.
func (b *builder) reference(ref, self string, known map[string]bool) (string, bool) {
	if known[ref] {
		return ref, ref != self
	}
	stage, port, ok := strings.Cut(ref, ".")
	if !ok || !known[stage] || stage == self || port == "" {
		return "", false
	}
	if s, ok := b.m.Stages[stage]; ok && len(s.Outputs) > 0 {
		if _, ok := s.Outputs[port]; !ok {
			return "", false
		}
	}
	return stage, true
}

// port names a reference's port: a bare "<stage>" of a stage the manifest lists one output
// for is "<stage>.<output>"; any other reference stays as written.
func (b *builder) port(ref string) string {
	if s, ok := b.m.Stages[ref]; ok && len(s.Outputs) == 1 {
		for p := range s.Outputs {
			return ref + "." + p
		}
	}
	return ref
}

// stringsOf returns a TOML value's strings: the value itself, or an array's string elements.
func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
