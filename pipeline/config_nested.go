package pipeline

import "errors"

// Nested decodes a table of settings that the stage holds under key (a search stage's `base`:
// the keys of a train stage) against fields, exactly as a stage's own table is decoded
// against its kind's fields: unknown keys (with a "did you mean", or the hint misplaced gives
// for a key), types, enums, ranges, required keys and nested tables, every problem at its
// line and column under key. raw is the table as written, or a variant of it (a search
// trial's parameters applied): a value that is not in the file points at the nearest table
// that is.
//
// The result reads like a stage's config (values normalised, defaults filled in, IsSet), so
// that a kind's constructor can build from it; its Errorf points at keys under key, and it
// names this stage. Input fields among fields are decoded but not resolved: the result has no
// inputs. The error joins one *ConfigError per problem.
func (c *StageConfig) Nested(key string, raw map[string]any, fields []Field, misplaced map[string]string) (*StageConfig, error) {
	prefix := joinKey(c.prefix, key)
	d := &decoder{file: c.file, stage: c.Name, dir: c.Dir, pos: c.pos, sets: c.sets}
	if raw == nil {
		raw = map[string]any{}
	}
	vals, set, _ := d.table(joinKey("stages."+c.Name, prefix), prefix, raw, fields, misplaced)
	if len(d.errs) > 0 {
		return nil, errors.Join(sortErrors(d.errs)...)
	}
	return &StageConfig{Name: c.Name, Kind: c.Kind, Spec: &KindSpec{Kind: c.Kind, Fields: fields}, Dir: c.Dir, RunSeed: c.RunSeed,
		values: vals, set: set, common: c.common, refs: map[string][]Ref{}, pos: c.pos, sets: c.sets, file: c.file, order: c.order, prefix: prefix}, nil
}
