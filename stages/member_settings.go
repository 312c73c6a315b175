package stages

import (
	"github.com/pipe-ml/pipe/pipeline"
)

// memberSettings reads an inline table of train settings (an ensemble's `member`, or one entry
// of its `specs`) as parseTrainSpec reads a train stage's config. The table was checked
// against memberFields when the pipeline was loaded.
type memberSettings struct {
	c      *pipeline.StageConfig
	prefix string // "member" or "specs[2]"
	m      map[string]any
	fields map[string]pipeline.Field
}

// memberExcluded are the train fields a member may not set: data and target fields belong to
// the ensemble stage itself.
var memberExcluded = map[string]bool{"train": true, "val": true, "target": true, "features": true, "task": true, "tasks": true, "workers": true}

// memberFields are the keys of a member table (`member`, an entry of `specs`): the train
// stage's fields but memberExcluded, with their types, ranges, defaults and nested tables.
func memberFields() []pipeline.Field {
	var out []pipeline.Field
	for _, f := range trainFields() {
		if !memberExcluded[f.Name] {
			out = append(out, f)
		}
	}
	return append(out, imageInputField())
}

// imageInputField is the image key of an ensemble's member table and of a search's train
// base: the train stage's image key, resolved against the data in the same way (imageShape).
func imageInputField() pipeline.Field {
	return pipeline.Field{Name: "image", Type: pipeline.TypeBoolOrTable, Fields: imageFields(),
		Doc: "The feature columns are an image, as the train stage's image key: true (digits, mnist: the shape is inferred) or { shape = [channels, height, width] }. The image layers (conv, max_pool, flatten...) need it."}
}

// memberMisplaced gives the hint for a key that belongs to the ensemble stage itself.
func memberMisplaced() map[string]string {
	out := map[string]string{}
	for k := range memberExcluded {
		out[k] = "set it on the ensemble stage itself: all members share it"
	}
	return out
}

// memberTable is the spec of one member table.
func memberTable(name, doc string) pipeline.Field {
	return pipeline.Field{Name: name, Type: pipeline.TypeTable, Fields: memberFields(), Misplaced: memberMisplaced(),
		DocsSee: "the train stage's fields but train, val, target, features, task, tasks and workers", Doc: doc}
}

// newMemberSettings reads a member table that the ensemble's spec has checked and filled
// with defaults.
func newMemberSettings(c *pipeline.StageConfig, prefix string, m map[string]any) *memberSettings {
	ms := &memberSettings{c: c, prefix: prefix, m: m, fields: map[string]pipeline.Field{}}
	for _, f := range memberFields() {
		ms.fields[f.Name] = f
	}
	return ms
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
func (s *memberSettings) Bool(key string) bool  { v, _ := s.value(key).(bool); return v }
func (s *memberSettings) List(key string) []any { v, _ := s.value(key).([]any); return v }
func (s *memberSettings) Table(key string) map[string]any {
	v, _ := s.value(key).(map[string]any)
	return v
}
func (s *memberSettings) Errorf(key, format string, args ...any) *pipeline.ConfigError {
	return s.c.Errorf(s.prefix+"."+key, format, args...)
}
