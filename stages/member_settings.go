package stages

import (
	"fmt"
	"math"
	"sort"

	"github.com/pipe-ml/pipe/pipeline"
)

// memberSettings reads an inline table of train settings (an ensemble's `member`, or one entry
// of its `specs`) with the train stage's fields, defaults and key checks.
type memberSettings struct {
	c      *pipeline.StageConfig
	prefix string // "member" or "specs[2]"
	m      map[string]any
	fields map[string]pipeline.Field
}

// memberFieldNames are the train fields a member may set (data and target fields belong to
// the ensemble stage itself).
var memberExcluded = map[string]bool{"train": true, "val": true, "target": true, "features": true, "task": true, "tasks": true, "workers": true}

func newMemberSettings(c *pipeline.StageConfig, prefix string, m map[string]any) (*memberSettings, error) {
	ms := &memberSettings{c: c, prefix: prefix, m: m, fields: map[string]pipeline.Field{}}
	var names []string
	for _, f := range trainFields() {
		if !memberExcluded[f.Name] {
			ms.fields[f.Name] = f
			names = append(names, f.Name)
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := ms.fields[k]
		if !ok {
			e := c.Errorf(prefix+"."+k, "unknown key of a member")
			if s := pipeline.Suggest(k, names); s != "" {
				e.Hint = fmt.Sprintf("did you mean %q?", s)
			} else if memberExcluded[k] {
				e.Hint = "set it on the ensemble stage itself: all members share it"
			}
			return nil, e
		}
		if err := checkMemberType(f, m[k]); err != "" {
			return nil, c.Errorf(prefix+"."+k, "%s", err)
		}
	}
	return ms, nil
}

func checkMemberType(f pipeline.Field, v any) string {
	switch f.Type {
	case pipeline.TypeInt:
		if _, ok := v.(int64); !ok {
			return fmt.Sprintf("expected an integer, found %v", v)
		}
	case pipeline.TypeFloat:
		switch x := v.(type) {
		case int64:
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return "must be finite"
			}
		default:
			return fmt.Sprintf("expected a number, found %v", v)
		}
	case pipeline.TypeString:
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("expected a string, found %v", v)
		}
	case pipeline.TypeTable:
		if _, ok := v.(map[string]any); !ok {
			return "expected a table"
		}
	case pipeline.TypeList:
		if _, ok := v.([]any); !ok {
			return "expected an array"
		}
	}
	return ""
}

func (s *memberSettings) value(key string) any {
	if v, ok := s.m[key]; ok {
		return v
	}
	return s.fields[key].Default
}

func (s *memberSettings) Strings(key string) []string {
	switch v := s.value(key).(type) {
	case string:
		return []string{v}
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if str, ok := x.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}
func (s *memberSettings) String(key string) string { v, _ := s.value(key).(string); return v }
func (s *memberSettings) Float(key string) float64 {
	switch v := s.value(key).(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	}
	return 0
}
func (s *memberSettings) Int(key string) int    { v, _ := s.value(key).(int64); return int(v) }
func (s *memberSettings) Value(key string) any  { return s.m[key] }
func (s *memberSettings) List(key string) []any { v, _ := s.value(key).([]any); return v }
func (s *memberSettings) Table(key string) map[string]any {
	v, _ := s.value(key).(map[string]any)
	return v
}
func (s *memberSettings) Errorf(key, format string, args ...any) *pipeline.ConfigError {
	return s.c.Errorf(s.prefix+"."+key, format, args...)
}
