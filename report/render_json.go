package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
)

// marshalPageJSON is the Report's JSON as the page embeds it. It is what encoding/json
// writes (struct fields by their json tags with omitempty, map keys sorted, <, > and &
// escaped as \u003c, \u003e and \u0026, so that no "</script" can end the element that holds
// it), except that a NaN or infinite float is written as null instead of failing the whole
// report: a diverged training's NaN loss is exactly what its report must show. Values that
// marshal themselves (time.Time) are asked to.
func marshalPageJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeValue(&buf, reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var marshalerType = reflect.TypeFor[json.Marshaler]()

func encodeValue(buf *bytes.Buffer, v reflect.Value) error {
	if !v.IsValid() {
		buf.WriteString("null")
		return nil
	}
	if v.Type().Implements(marshalerType) {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		return encodeWithJSON(buf, v.Interface())
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() && v.Addr().Type().Implements(marshalerType) {
		return encodeWithJSON(buf, v.Addr().Interface())
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		return encodeValue(buf, v.Elem())
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			buf.WriteString("null")
			return nil
		}
		return encodeWithJSON(buf, v.Interface())
	case reflect.Struct:
		return encodeStruct(buf, v)
	case reflect.Map:
		return encodeMap(buf, v)
	case reflect.Slice:
		if v.IsNil() {
			buf.WriteString("null")
			return nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return encodeWithJSON(buf, v.Interface()) // base64, as encoding/json
		}
		return encodeList(buf, v)
	case reflect.Array:
		return encodeList(buf, v)
	default:
		return encodeWithJSON(buf, v.Interface())
	}
}

// encodeWithJSON writes what encoding/json writes for x (HTML-escaped).
func encodeWithJSON(buf *bytes.Buffer, x any) error {
	b, err := json.Marshal(x)
	if err != nil {
		return err
	}
	buf.Write(b)
	return nil
}

func encodeList(buf *bytes.Buffer, v reflect.Value) error {
	buf.WriteByte('[')
	for i := range v.Len() {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encodeValue(buf, v.Index(i)); err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
	}
	buf.WriteByte(']')
	return nil
}

func encodeMap(buf *bytes.Buffer, v reflect.Value) error {
	if v.IsNil() {
		buf.WriteString("null")
		return nil
	}
	if v.Type().Key().Kind() != reflect.String {
		return fmt.Errorf("report JSON: map key type %s is not a string", v.Type().Key())
	}
	keys := v.MapKeys()
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encodeWithJSON(buf, k.String()); err != nil {
			return err
		}
		buf.WriteByte(':')
		if err := encodeValue(buf, v.MapIndex(k)); err != nil {
			return fmt.Errorf("%q: %w", k.String(), err)
		}
	}
	buf.WriteByte('}')
	return nil
}

func encodeStruct(buf *bytes.Buffer, v reflect.Value) error {
	t := v.Type()
	buf.WriteByte('{')
	first := true
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous {
			return fmt.Errorf("report JSON: embedded field %s.%s is not supported", t.Name(), f.Name)
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fv := v.Field(i)
		if hasOption(opts, "omitempty") && isEmptyValue(fv) {
			continue
		}
		if !first {
			buf.WriteByte(',')
		}
		first = false
		if err := encodeWithJSON(buf, name); err != nil {
			return err
		}
		buf.WriteByte(':')
		if err := encodeValue(buf, fv); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	buf.WriteByte('}')
	return nil
}

func hasOption(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}
