package pipeline

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// position is a 1-based line and column in the pipeline file.
type position struct{ Line, Col int }

// keyPositions maps every key path of a TOML document ("stages.model.epochs",
// "stages.model.layers[0].dense") to where it is written. It assumes the document parses.
func keyPositions(data []byte) map[string]position {
	out := map[string]position{}
	p := &unstable.Parser{}
	p.Reset(data)
	var table []string
	arrayTableCount := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			// A header inside an array of tables ([[a]] then [a.b] or [[a.c]]) belongs to
			// the last element: "a[0].b", "a[0].c[2]".
			parts := keyParts(e.Key())
			path := ""
			for i, part := range parts {
				path = join(path, part)
				if i == len(parts)-1 {
					break
				}
				if n := arrayTableCount[path]; n > 0 {
					path += "[" + strconv.Itoa(n-1) + "]"
				}
			}
			headerPos := shapeOf(p, e)
			if kit := e.Key(); kit.Next() && kit.Node().Raw.Length > 0 {
				headerPos = shapeOf(p, kit.Node())
			}
			if e.Kind == unstable.ArrayTable {
				n := arrayTableCount[path]
				arrayTableCount[path] = n + 1
				path += "[" + strconv.Itoa(n) + "]"
			}
			table = []string{path}
			if _, ok := out[path]; !ok {
				out[path] = headerPos
			}
		case unstable.KeyValue:
			recordKeyValue(p, e, strings.Join(table, "."), out)
		}
	}
	return out
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func recordKeyValue(p *unstable.Parser, kv *unstable.Node, prefix string, out map[string]position) {
	it := kv.Key()
	var parts []string
	var first *unstable.Node
	for it.Next() {
		if first == nil {
			first = it.Node()
		}
		parts = append(parts, string(it.Node().Data))
	}
	path := prefix
	for _, part := range parts {
		path = join(path, part)
		if _, ok := out[path]; !ok {
			if first != nil && first.Raw.Length > 0 {
				out[path] = shapeOf(p, first)
			} else {
				out[path] = shapeOf(p, kv)
			}
		}
	}
	recordValue(p, kv.Value(), path, out)
}

func recordValue(p *unstable.Parser, v *unstable.Node, path string, out map[string]position) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if it.Node().Kind == unstable.KeyValue {
				recordKeyValue(p, it.Node(), path, out)
			}
		}
	case unstable.Array:
		it := v.Children()
		i := 0
		for it.Next() {
			n := it.Node()
			elem := path + "[" + strconv.Itoa(i) + "]"
			if _, ok := out[elem]; !ok {
				out[elem] = shapeOf(p, n)
			}
			recordValue(p, n, elem, out)
			i++
		}
	}
}

func shapeOf(p *unstable.Parser, n *unstable.Node) position {
	if n.Raw.Length == 0 && n.Raw.Offset == 0 {
		return position{}
	}
	defer func() { _ = recover() }() // a node without a raw range has no position
	s := p.Shape(n.Raw)
	return position{Line: s.Start.Line, Col: s.Start.Column}
}
