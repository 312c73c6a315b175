package report

import (
	"fmt"
	"html"
	"strings"
)

// The DAG diagram's geometry, in SVG user units (pixels at 100%).
const (
	dagNodeWidth  = 156
	dagNodeHeight = 42
	dagColumn     = 200 // from one layer's left edge to the next's
	dagRow        = 58  // from one row's top edge to the next's
	dagPad        = 12
)

// dagStatusColors are a node's fill and stroke by status.
var dagStatusColors = map[string][2]string{
	"succeeded": {"#e3f4e4", "#2e7d32"},
	"failed":    {"#fde2e1", "#c62828"},
	"degraded":  {"#fff0db", "#e65100"},
	"canceled":  {"#f3e9e4", "#6d4c41"},
	"crashed":   {"#fbe3ee", "#ad1457"},
	"running":   {"#e1ecfa", "#1565c0"},
	"skipped":   {"#eeeff1", "#8a9099"},
	"pending":   {"#f5f6f7", "#b0b5bc"},
}

// dagNodeBox is a node's top-left corner.
func dagNodeBox(n Node) (x, y int) {
	return dagPad + n.Layer*dagColumn, dagPad + n.Row*dagRow
}

// dagSVG draws the stage graph: one column per Node.Layer (sources at the left), one row per
// Node.Row, each stage a box coloured by its status and linked to its section, each input
// reference an edge from the producer's right side to the reader's left side. An edge whose
// stage is not a node is left out.
func dagSVG(g Graph) string {
	if len(g.Nodes) == 0 {
		return ""
	}
	at := map[string]Node{}
	width, height := 0, 0
	for _, n := range g.Nodes {
		at[n.Stage] = n
		x, y := dagNodeBox(n)
		width = max(width, x+dagNodeWidth+dagPad)
		height = max(height, y+dagNodeHeight+dagPad)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="dag-svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="stage graph">`, width, height, width, height)
	b.WriteString(`<defs><marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#7b8591"/></marker></defs>`)
	for _, e := range g.Edges {
		fromStage, port, _ := strings.Cut(e.From, ".")
		toStage, field, _ := strings.Cut(e.To, ".")
		from, ok1 := at[fromStage]
		to, ok2 := at[toStage]
		if !ok1 || !ok2 {
			continue
		}
		fx, fy := dagNodeBox(from)
		tx, ty := dagNodeBox(to)
		x1, y1 := fx+dagNodeWidth, fy+dagNodeHeight/2
		x2, y2 := tx, ty+dagNodeHeight/2
		if to.Layer <= from.Layer { // not a left-to-right edge: leave from the bottom
			x1, y1 = fx+dagNodeWidth/2, fy+dagNodeHeight
		}
		dx := max((x2-x1)/2, 24)
		label := e.From + " → " + e.To
		if port == "" && field == "" {
			label = fromStage + " → " + toStage
		}
		fmt.Fprintf(&b, `<path class="dag-edge" d="M%d,%d C%d,%d %d,%d %d,%d" fill="none" stroke="#7b8591" stroke-width="1.5" marker-end="url(#dag-arrow)" data-from="%s" data-to="%s"><title>%s</title></path>`,
			x1, y1, x1+dx, y1, x2-dx, y2, x2-1, y2, esc(fromStage), esc(toStage), esc(label))
	}
	for _, n := range g.Nodes {
		x, y := dagNodeBox(n)
		c, ok := dagStatusColors[n.Status]
		if !ok {
			c = dagStatusColors["pending"]
		}
		fmt.Fprintf(&b, `<a href="#stage-%s" class="dag-node" data-stage="%s" data-status="%s"><title>%s (%s): %s</title>`,
			esc(n.Stage), esc(n.Stage), esc(n.Status), esc(n.Stage), esc(n.Kind), esc(n.Status))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="%s" stroke-width="2"/>`,
			x, y, dagNodeWidth, dagNodeHeight, c[0], c[1])
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" font-weight="600" fill="#1b1f24">%s</text>`, x+10, y+18, esc(clip(n.Stage, 20)))
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="%s">%s · %s</text></a>`, x+10, y+33, c[1], esc(clip(n.Kind, 12)), esc(n.Status))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

// clip cuts s to n runes, with an ellipsis.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
