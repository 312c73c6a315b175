package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// JSON has no NaN: a Series encodes a NaN value (an epoch without a validation loss, an empty
// bin of a reliability diagram) as null, and decodes null back to NaN. ±Inf is encoded as null
// too (a diverged loss has no place on a chart).

// MarshalJSON encodes s with NaN and ±Inf values as null.
func (s Series) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	name, err := json.Marshal(s.Name)
	if err != nil {
		return nil, err
	}
	b.WriteString(`{"name":`)
	b.Write(name)
	b.WriteString(`,"values":`)
	b.Write(appendFloats(nil, s.Values))
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON decodes a Series, null values as NaN.
func (s *Series) UnmarshalJSON(data []byte) error {
	var raw struct {
		Name   string     `json:"name"`
		Values []*float64 `json:"values"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	s.Name = raw.Name
	s.Values = nil
	if raw.Values != nil {
		s.Values = make([]float64, len(raw.Values))
		for i, v := range raw.Values {
			if v == nil {
				s.Values[i] = math.NaN()
			} else {
				s.Values[i] = *v
			}
		}
	}
	return nil
}

// appendFloats appends vs as a JSON array (null for a NaN or an infinity; nil as null).
func appendFloats(b []byte, vs []float64) []byte {
	if vs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFloat(b, v)
	}
	return append(b, ']')
}

// appendFloat appends v as encoding/json writes a float64 (null when it is not finite).
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(v)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, v, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// finiteMap returns the finite entries of m (nil when none): JSON cannot hold the others.
func finiteMap(m map[string]float64) map[string]float64 {
	var out map[string]float64
	for k, v := range m {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if out == nil {
			out = make(map[string]float64, len(m))
		}
		out[k] = v
	}
	return out
}

// finite reports whether v is neither NaN nor an infinity.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// orNaN is v, or NaN when ok is false.
func orNaN(v float64, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	return v
}

// jsonNumber reads a finite number out of a decoded JSON value; ok is false for anything
// else (the manifest writes a NaN or an infinity as a string, which is not read as a number).
func jsonNumber(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return f, finite(f)
}

// MarshalJSON encodes m with an unknown val metric (NaN: a dropped member, or an older run
// that does not say which metric) as null.
func (m Member) MarshalJSON() ([]byte, error) {
	type plain Member
	var val *float64
	if finite(m.ValMetric) {
		val = &m.ValMetric
	}
	return json.Marshal(struct {
		plain
		ValMetric *float64 `json:"val_metric"`
	}{plain(m), val})
}

// UnmarshalJSON decodes a Member, a null val metric as NaN.
func (m *Member) UnmarshalJSON(data []byte) error {
	type plain Member
	var raw struct {
		plain
		ValMetric *float64 `json:"val_metric"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*m = Member(raw.plain)
	m.ValMetric = math.NaN()
	if raw.ValMetric != nil {
		m.ValMetric = *raw.ValMetric
	}
	return nil
}

// jsonInt reads an integer out of a decoded JSON value.
func jsonInt(v any) (int, bool) {
	f, ok := jsonNumber(v)
	if !ok || f != math.Trunc(f) {
		return 0, false
	}
	return int(f), true
}

// jsonString formats a decoded JSON value for display: a string as it is, a list joined
// with ×, anything else as fmt prints it.
func jsonString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		var b bytes.Buffer
		for i, e := range x {
			if i > 0 {
				b.WriteString("×")
			}
			b.WriteString(jsonString(e))
		}
		return b.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}
