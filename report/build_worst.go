package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/internal/tableio"
)

// Limits of the worst-k table.
const (
	// MaxWorstRows is the most worst rows shown.
	MaxWorstRows = 20
	// MaxWorstColumns is the most columns shown besides _row and loss.
	MaxWorstColumns = 12
)

// worstFixed are the evaluate stage's first columns of a worst-k file; the inputs follow.
var worstFixed = map[string]bool{"_row": true, "loss": true, "target": true, "predicted": true, "p_target": true}

// worst reads a worst-k Parquet file into a table for display (_row and loss, then at most
// MaxWorstColumns more columns, at most MaxWorstRows rows; numbers with 4 significant digits)
// and, when its inputs are image-shaped (see imageShape), one grayscale PNG data URI per row.
func (b *builder) worst(path string) (*Rows, []string, error) {
	rd, err := tableio.OpenFile(path, b.opts.Mem, tableio.CSVOptions{Limit: MaxWorstRows})
	if err != nil {
		return nil, nil, err
	}
	defer rd.Release()
	fields := rd.Schema().Fields()
	cols := make([][]cell, len(fields))
	for rd.Next() {
		rec := rd.RecordBatch()
		for j := range fields {
			cols[j] = append(cols[j], cells(rec.Column(j))...)
		}
	}
	if err := rd.Err(); err != nil {
		return nil, nil, err
	}
	n := 0
	if len(cols) > 0 {
		n = min(len(cols[0]), MaxWorstRows)
	}
	// _row and loss first, then the other columns in file order.
	var shown []int
	for _, want := range []string{"_row", "loss"} {
		for j, f := range fields {
			if f.Name == want {
				shown = append(shown, j)
			}
		}
	}
	others := 0
	for j, f := range fields {
		if f.Name == "_row" || f.Name == "loss" || others >= MaxWorstColumns {
			continue
		}
		shown = append(shown, j)
		others++
	}
	rows := &Rows{Rows: make([][]string, n)}
	for _, j := range shown {
		rows.Columns = append(rows.Columns, fields[j].Name)
	}
	for _, j := range shown {
		tiny := 0.0
		if !worstFixed[fields[j].Name] {
			tiny = tinyBelow(cols[j][:n])
		}
		for r := 0; r < n; r++ {
			rows.Rows[r] = append(rows.Rows[r], cols[j][r].format(tiny))
		}
	}
	var inputs []string
	for _, f := range fields {
		if !worstFixed[f.Name] {
			inputs = append(inputs, f.Name)
		}
	}
	h, w, pixels := b.imageShape(inputs)
	if pixels == nil {
		return rows, nil, nil
	}
	byName := map[string]int{}
	for j, f := range fields {
		byName[f.Name] = j
	}
	images := make([]string, n)
	for r := 0; r < n; r++ {
		v := make([]float64, len(pixels))
		for i, p := range pixels {
			v[i] = cols[byName[p]][r].num
		}
		uri, err := grayPNG(v, h, w)
		if err != nil {
			return nil, nil, err
		}
		images[r] = uri
	}
	return rows, images, nil
}

// cell is one value of a worst-k file.
type cell struct {
	null  bool
	num   float64 // a number's value (NaN for text)
	isInt bool
	text  string
}

// cells reads a column's values.
func cells(a arrow.Array) []cell {
	out := make([]cell, a.Len())
	for i := range out {
		if a.IsNull(i) {
			out[i] = cell{null: true, num: math.NaN()}
			continue
		}
		switch c := a.(type) {
		case *array.Int64:
			out[i] = cell{num: float64(c.Value(i)), isInt: true}
		case *array.Int32:
			out[i] = cell{num: float64(c.Value(i)), isInt: true}
		case *array.Float64:
			out[i] = cell{num: c.Value(i)}
		case *array.Float32:
			out[i] = cell{num: float64(c.Value(i))}
		case *array.String:
			out[i] = cell{num: math.NaN(), text: c.Value(i)}
		default:
			out[i] = cell{num: math.NaN(), text: a.ValueStr(i)}
		}
	}
	return out
}

// tinyBelow is the magnitude under which a column's floats are shown as 0: a millionth of its
// largest (the rounding left by undoing a normalization, 1.8e-09 for a pixel of 0).
func tinyBelow(col []cell) float64 {
	var m float64
	for _, c := range col {
		if !c.isInt && finite(c.num) {
			m = math.Max(m, math.Abs(c.num))
		}
	}
	return m * 1e-6
}

// format writes a cell compactly: integers whole, other numbers with 4 significant digits.
func (c cell) format(tiny float64) string {
	switch {
	case c.null:
		return ""
	case c.isInt:
		return strconv.FormatInt(int64(c.num), 10)
	case math.IsNaN(c.num):
		// A number written as text (a regression's target and prediction): compact too.
		if f, err := strconv.ParseFloat(c.text, 64); err == nil && strings.ContainsAny(c.text, ".eE") {
			return strconv.FormatFloat(f, 'g', 4, 64)
		}
		return c.text
	case math.Abs(c.num) < tiny:
		return "0"
	}
	return strconv.FormatFloat(c.num, 'g', 4, 64)
}

var (
	pxName       = regexp.MustCompile(`^(?:px|pixel_?)(\d+)$`)
	pixelRowCol  = regexp.MustCompile(`^pixel_(\d+)_(\d+)$`)
	minImageSide = 4
)

// imageShape decides whether the inputs of a worst-k file are an image: by the augment stage's
// image = { height, width, first } of the run's config (height × width columns from first on),
// or by their names: a complete square of columns px0..pxN or pixel_0..pixel_N (side ≥ 4, in
// index order: 8 × 8 for the digits, 28 × 28 for MNIST), or a complete grid pixel_<r>_<c>. It
// returns the height, width and the pixel columns in row-major order, or nil.
func (b *builder) imageShape(inputs []string) (int, int, []string) {
	for _, name := range sortedKeys(b.config) {
		tab := b.config[name]
		if jsonString(tab["kind"]) != "augment" {
			continue
		}
		img, _ := tab["image"].(map[string]any)
		h, okH := jsonInt(img["height"])
		w, okW := jsonInt(img["width"])
		first := jsonString(img["first"])
		if !okH || !okW || h <= 0 || w <= 0 {
			continue
		}
		for i, in := range inputs {
			if in == first && i+h*w <= len(inputs) {
				return h, w, inputs[i : i+h*w]
			}
		}
	}
	byIndex := map[int]string{}
	grid := map[[2]int]string{}
	rowsN, colsN := 0, 0
	for _, in := range inputs {
		if m := pxName.FindStringSubmatch(in); m != nil {
			i, _ := strconv.Atoi(m[1])
			byIndex[i] = in
		}
		if m := pixelRowCol.FindStringSubmatch(in); m != nil {
			r, _ := strconv.Atoi(m[1])
			c, _ := strconv.Atoi(m[2])
			grid[[2]int{r, c}] = in
			rowsN, colsN = max(rowsN, r+1), max(colsN, c+1)
		}
	}
	if n := len(byIndex); n > 0 {
		side := int(math.Round(math.Sqrt(float64(n))))
		if side*side == n && side >= minImageSide {
			out := make([]string, n)
			for i := range out {
				if out[i] = byIndex[i]; out[i] == "" {
					return 0, 0, nil
				}
			}
			return side, side, out
		}
	}
	if len(grid) > 0 && len(grid) == rowsN*colsN && rowsN >= minImageSide && colsN >= minImageSide {
		out := make([]string, 0, len(grid))
		for r := 0; r < rowsN; r++ {
			for c := 0; c < colsN; c++ {
				out = append(out, grid[[2]int{r, c}])
			}
		}
		return rowsN, colsN, out
	}
	return 0, 0, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// grayPNG encodes h × w values (row-major) as a grayscale PNG data URI, scaled so that the
// smallest value is black and the largest white (all black when they are equal; a missing
// value is black).
func grayPNG(v []float64, h, w int) (string, error) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		if finite(x) {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i, x := range v {
		var g uint8
		if finite(x) && hi > lo {
			g = uint8(math.Round((x - lo) / (hi - lo) * 255))
		}
		img.SetGray(i%w, i/w, color.Gray{Y: g})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("encode a worst row as PNG: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}
