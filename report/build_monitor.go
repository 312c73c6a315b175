package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxMonitorSteps is the most sampled steps a layer's monitor keeps (more are downsampled,
// evenly, the first and the last kept).
const MaxMonitorSteps = 200

// UpdateRatioBand is the healthy range of update/param ratios drawn as a band: a decade on
// either side of the 1e-3 rule of thumb (the monitor warns outside [1e-6, 1e-1]).
var UpdateRatioBand = Band{Lo: 1e-4, Hi: 1e-2, Label: "healthy: about 1e-3"}

// readMonitor reads a train stage's monitor.csv (see stages/monitor.go for its columns) into
// one LayerMonitor per layer, in the file's order: the activation histograms over training as
// shares on common bins (when the file has the histogram columns), the dead-unit share and the
// gradient norm of the layer's output, the update/param ratio of each of its params (a param
// "dense_1/W" belongs to layer "dense_1"; params of a layer without activation rows, such as a
// head's, get a LayerMonitor of their own), and the monitor's warning about it. Nil without a
// file.
func readMonitor(path string, info map[string]any) (*Monitoring, error) {
	t, ok, err := readTable(path, "name", "kind", "hist_counts")
	if err != nil || !ok {
		return nil, err
	}
	names, kinds := t.text["name"], t.text["kind"]
	steps := t.cols["step"]
	if names == nil || kinds == nil || steps == nil {
		return nil, fmt.Errorf("no step, name and kind columns")
	}
	type samples struct {
		steps []float64
		rows  []int
	}
	layers := map[string]*samples{}
	params := map[string]map[string]*samples{} // layer → param → samples
	var order []string
	add := func(layer string) {
		if layers[layer] == nil && params[layer] == nil {
			order = append(order, layer)
		}
	}
	var paramOrder = map[string][]string{}
	for i := range names {
		if !finite(steps[i]) {
			continue // a row without its step cannot be placed
		}
		if kinds[i] == "param" {
			layer, _, _ := strings.Cut(names[i], "/")
			add(layer)
			if params[layer] == nil {
				params[layer] = map[string]*samples{}
			}
			p := params[layer][names[i]]
			if p == nil {
				p = &samples{}
				params[layer][names[i]] = p
				paramOrder[layer] = append(paramOrder[layer], names[i])
			}
			p.steps, p.rows = append(p.steps, steps[i]), append(p.rows, i)
			continue
		}
		add(names[i])
		if layers[names[i]] == nil {
			layers[names[i]] = &samples{}
		}
		l := layers[names[i]]
		l.steps, l.rows = append(l.steps, steps[i]), append(l.rows, i)
	}
	warnings := layerWarnings(info)
	mon := &Monitoring{}
	for _, name := range order {
		lm := LayerMonitor{Layer: name, Warning: warnings[name]}
		if l := layers[name]; l != nil {
			idx := sampleIndex(len(l.steps), MaxMonitorSteps)
			rows := pick(l.rows, idx)
			lm.Steps = pickFloats(l.steps, idx)
			lm.BinEdges, lm.Histogram, err = histogramShares(t, rows)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", name, err)
			}
			lm.Curves = append(lm.Curves,
				Curve{Title: "dead units", XLabel: "step", YLabel: "share of units", X: lm.Steps, Series: []Series{{Name: "dead_fraction", Values: column(t, "dead_fraction", rows)}}},
				Curve{Title: "gradient norm", XLabel: "step", YLabel: "‖dLoss/dOutput‖", X: lm.Steps, Series: []Series{{Name: "grad_norm", Values: column(t, "grad_norm", rows)}}, LogY: true})
		}
		if ps := params[name]; ps != nil {
			// The params' samples are at the layer's steps when it has any; else at their own.
			x := lm.Steps
			if x == nil {
				first := ps[paramOrder[name][0]]
				x = pickFloats(first.steps, sampleIndex(len(first.steps), MaxMonitorSteps))
				lm.Steps = x
			}
			at := map[float64]int{}
			for i, s := range x {
				at[s] = i
			}
			c := Curve{Title: "update/param ratio", XLabel: "step", YLabel: "‖Δw‖/‖w‖", X: x, LogY: true, Bands: []Band{UpdateRatioBand}}
			for _, pname := range paramOrder[name] {
				p := ps[pname]
				v := make([]float64, len(x))
				for i := range v {
					v[i] = math.NaN()
				}
				ratio := column(t, "update_to_param", p.rows)
				for j, s := range p.steps {
					if i, ok := at[s]; ok {
						v[i] = ratio[j]
					}
				}
				c.Series = append(c.Series, Series{Name: pname, Values: v})
			}
			lm.Curves = append(lm.Curves, c)
		}
		mon.Layers = append(mon.Layers, lm)
	}
	if len(mon.Layers) == 0 {
		return nil, nil
	}
	return mon, nil
}

// layerWarnings assigns the monitor's warnings (info.monitor_warnings: "layer <name>: ..." or
// "<layer>/<param>: ...") to their layers, joined with "; ".
func layerWarnings(info map[string]any) map[string]string {
	out := map[string]string{}
	list, _ := info["monitor_warnings"].([]any)
	for _, x := range list {
		w := jsonString(x)
		head, _, ok := strings.Cut(w, ":")
		if !ok {
			continue
		}
		layer := strings.TrimPrefix(head, "layer ")
		layer, _, _ = strings.Cut(layer, "/")
		if out[layer] != "" {
			out[layer] += "; "
		}
		out[layer] += w
	}
	return out
}

// column returns the named column's values at rows (NaN without the column).
func column(t *table, name string, rows []int) []float64 {
	c := t.cols[name]
	out := make([]float64, len(rows))
	for i, r := range rows {
		out[i] = math.NaN()
		if r < len(c) {
			out[i] = c[r]
		}
	}
	return out
}

func pick(v []int, idx []int) []int {
	out := make([]int, len(idx))
	for i, j := range idx {
		out[i] = v[j]
	}
	return out
}

func pickFloats(v []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for i, j := range idx {
		out[i] = v[j]
	}
	return out
}

// histogramShares puts the activation histograms of rows (each with its own range
// [hist_min, hist_max] split into equal-width bins) on common bins: as many as the samples
// have, over the smallest hist_min and the largest hist_max of them all. A sample's bin is
// spread over the common bins it overlaps, in proportion to the overlap (values taken as
// uniform within a bin); a sample whose values were all equal puts its count in the common
// bin of that value. Each step's shares sum to 1, rounded to 4 decimals. Nil without the
// histogram columns.
func histogramShares(t *table, rows []int) ([]float64, [][]float64, error) {
	los, his, counts := t.cols["hist_min"], t.cols["hist_max"], t.text["hist_counts"]
	if los == nil || his == nil || counts == nil {
		return nil, nil, nil
	}
	parsed := make([][]float64, len(rows))
	lo, hi := math.Inf(1), math.Inf(-1)
	bins := 0
	for i, r := range rows {
		if counts[r] == "" || !finite(los[r]) || !finite(his[r]) {
			continue
		}
		for _, f := range strings.Fields(counts[r]) {
			c, err := strconv.ParseFloat(f, 64)
			if err != nil || c < 0 {
				return nil, nil, fmt.Errorf("line %d, column \"hist_counts\": %q is not a count", r+2, f)
			}
			parsed[i] = append(parsed[i], c)
		}
		bins = max(bins, len(parsed[i]))
		lo, hi = math.Min(lo, los[r]), math.Max(hi, his[r])
	}
	if bins == 0 {
		return nil, nil, nil
	}
	width := (hi - lo) / float64(bins)
	edges := make([]float64, bins+1)
	for b := range edges {
		edges[b] = lo + float64(b)*width
	}
	edges[bins] = hi
	common := func(v float64) int {
		if width <= 0 {
			return 0
		}
		return min(max(int((v-lo)/width), 0), bins-1)
	}
	out := make([][]float64, len(rows))
	for i, r := range rows {
		out[i] = make([]float64, bins)
		c := parsed[i]
		if len(c) == 0 {
			continue
		}
		sLo, sHi := los[r], his[r]
		sw := (sHi - sLo) / float64(len(c))
		var total float64
		for b, n := range c {
			if n == 0 {
				continue
			}
			total += n
			a, z := sLo+float64(b)*sw, sLo+float64(b+1)*sw
			if sw <= 0 || width <= 0 {
				out[i][common(a)] += n
				continue
			}
			for cb := common(a); cb <= common(z) && cb < bins; cb++ {
				overlap := math.Min(z, edges[cb+1]) - math.Max(a, edges[cb])
				if overlap > 0 {
					out[i][cb] += n * overlap / sw
				}
			}
		}
		if total > 0 {
			for b := range out[i] {
				out[i][b] = math.Round(out[i][b]/total*1e4) / 1e4
			}
		}
	}
	return edges, out, nil
}
