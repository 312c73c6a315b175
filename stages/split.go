package stages

import (
	"context"
	"fmt"
	"github.com/pipe-ml/pipe/bundle"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/features"
	"github.com/pipe-ml/pipe/internal/arrowutil"
	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/schema"
)

func splitKind() pipeline.KindSpec {
	return pipeline.KindSpec{
		Kind: "split", Shape: pipeline.ShapeTransform, KeepsFeatures: true, Restored: restoredSplit,
		Doc: "Splits a table into train, val and test (and train_dev, carved from train). By default the ratios are sized by the row count " +
			"(about 70/15/15 up to 10,000 rows, then a held-out share of 15%·√(10,000/n) each, never below 1%: about 98/1/1 at millions of rows) " +
			"and recorded in the manifest. The default count mode reads the table once to count, then assigns exact per-class quotas (stratified) " +
			"with a seeded shuffle; with group_by, whole groups go to one split and the manifest reports the shares achieved and group_overlap (always 0). " +
			"mode = \"hash\" assigns rows (or groups) by a seeded hash in one pass, for data too large to count: shares are then approximate. " +
			"split_column takes the assignment from a column (values train, val, test) and overrides all of that.",
		Fields: []pipeline.Field{
			{Name: "input", Type: pipeline.TypeInput, Required: true, Port: pipeline.PortTable, Doc: "The table to split."},
			{Name: "ratios", Type: pipeline.TypeList, Len: 3, Elem: &pipeline.Field{Type: pipeline.TypeFloat, Min: pipeline.Bound(0), Max: pipeline.Bound(1)}, Doc: "[train, val, test] shares summing to 1. Default: sized by row count."},
			{Name: "stratify", Type: pipeline.TypeString, Default: "auto", Doc: "The column whose classes keep their proportions in every split. \"auto\": the target column when it looks like classes (string, bool, or integer with at most 50 distinct values); \"none\": no stratification."},
			{Name: "group_by", Type: pipeline.TypeString, Doc: "A column whose values (patients, users...) must never appear in two splits."},
			{Name: "mode", Type: pipeline.TypeString, Default: "count", Enum: []string{"count", "hash"}, Doc: "count: exact quotas (two passes). hash: one pass, approximate shares; needs ratios."},
			{Name: "split_column", Type: pipeline.TypeString, Doc: "A column that holds each row's split (train, val, test; also train_dev): used as is."},
			{Name: "train_dev", Type: pipeline.TypeFloat, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.5), Doc: "Share of the train split carved into train_dev, to tell variance from data mismatch in the bias/variance table."},
			{Name: "duplicates", Type: pipeline.TypeString, Default: "warn", Enum: []string{"warn", "fail", "ignore"}, Doc: "What exact duplicate rows across splits do (the leakage audit always counts them)."},
		},
		Outputs: func(c *pipeline.StageConfig) []pipeline.Port {
			ports := []pipeline.Port{
				{Name: "train", Kind: pipeline.PortTable, Split: schema.SplitTrain}, {Name: "val", Kind: pipeline.PortTable, Split: schema.SplitVal},
				{Name: "test", Kind: pipeline.PortTable, Split: schema.SplitTest},
			}
			if c.Float("train_dev") > 0 {
				ports = append(ports, pipeline.Port{Name: "train_dev", Kind: pipeline.PortTable, Split: schema.SplitTrainDev})
			}
			return ports
		},
		DefaultOutput: "train",
		OutputsDoc:    "`train` (table, the default), `val` (table), `test` (table), and `train_dev` (table) when train_dev > 0.",
		Example:       "[stages.split]\nkind = \"split\"\ninput = \"load\"\nstratify = \"target\"\ntrain_dev = 0.05",
		New:           newSplit,
	}
}

type splitStage struct {
	ratios     *features.Ratios
	stratify   string
	groupBy    string
	hash       bool
	column     string
	trainDev   float64
	duplicates string
}

func newSplit(c *pipeline.StageConfig) (pipeline.Stage, error) {
	s := &splitStage{stratify: c.String("stratify"), groupBy: c.String("group_by"), hash: c.String("mode") == "hash",
		column: c.String("split_column"), trainDev: c.Float("train_dev"), duplicates: c.String("duplicates")}
	if l := c.List("ratios"); l != nil {
		if len(l) != 3 {
			return nil, c.Errorf("ratios", "expected [train, val, test], found %d values", len(l))
		}
		var v [3]float64
		for i, x := range l {
			switch n := x.(type) {
			case float64:
				v[i] = n
			case int64:
				v[i] = float64(n)
			default:
				return nil, c.Errorf("ratios", "element %d is not a number", i)
			}
		}
		r := features.Ratios{Train: v[0], Val: v[1], Test: v[2], TrainDev: v[0] * s.trainDev}
		if err := r.Validate(); err != nil {
			return nil, c.Errorf("ratios", "%v", err)
		}
		s.ratios = &r
	}
	if s.hash && s.ratios == nil && s.column == "" {
		return nil, c.Errorf("mode", "hash mode reads the table once and cannot size ratios by row count: give ratios = [train, val, test]")
	}
	return s, nil
}

// rowKeys holds, per row, what the assignment needs.
type rowKeys struct {
	classes []int32
	groups  []uint64
	n       int
}

func (s *splitStage) Run(ctx context.Context, sc *pipeline.StageContext) error {
	in, err := sc.Input(ctx, "input")
	if err != nil {
		return err
	}
	sch := in.Schema()
	strat, err := s.stratifyColumn(ctx, sc, in)
	if err != nil {
		return err
	}
	for _, col := range []string{s.groupBy, s.column} {
		if col != "" && sch.FieldIndices(col) == nil {
			return &pipeline.DataError{Stage: sc.Name, Column: col, Msg: "no such column", Hint: columnsHint(col, sch)}
		}
	}
	seed := sc.Seed()
	var roles []features.Role
	ratios := features.Ratios{}
	switch {
	case s.column != "" || s.hash:
		// One pass: the role of each row is known as it is read.
	default:
		keys, err := s.collect(ctx, sc, in, strat)
		if err != nil {
			return err
		}
		if s.ratios != nil {
			ratios = *s.ratios
		} else {
			ratios = features.DefaultRatios(keys.n)
			ratios.TrainDev = ratios.Train * s.trainDev
		}
		roles, err = features.Assign(keys.n, keys.classes, keys.groups, ratios, seed)
		if err != nil {
			return &pipeline.DataError{Stage: sc.Name, Msg: err.Error(), Hint: "fewer splits (ratios), a smaller train_dev, or more rows"}
		}
	}
	if s.ratios != nil {
		ratios = *s.ratios
	}
	return s.write(ctx, sc, in, roles, ratios, strat, seed)
}

// stratifyColumn resolves "auto".
func (s *splitStage) stratifyColumn(ctx context.Context, sc *pipeline.StageContext, in *pipeline.Table) (string, error) {
	sch := in.Schema()
	switch s.stratify {
	case "none", "":
		return "", nil
	case "auto":
		var target string
		for _, f := range sch.Fields() {
			if schema.Role(f) == schema.RoleTarget {
				target = f.Name
				break
			}
		}
		if target == "" || s.column != "" {
			return "", nil
		}
		f, _ := sch.FieldsByName(target)
		if !schema.IsNumeric(f[0].Type) || f[0].Type.ID() == arrow.BOOL {
			return target, nil
		}
		// Integers with few distinct values are classes; floats are not.
		switch f[0].Type.ID() {
		case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64:
			return "", nil
		}
		distinct := map[string]bool{}
		r := in.Scan(ctx)
		defer r.Release()
		for r.Next() && len(distinct) <= 50 {
			vals, valid := arrowutil.Strings(r.RecordBatch().Column(sch.FieldIndices(target)[0]))
			for i, v := range vals {
				if valid[i] {
					distinct[v] = true
				}
			}
		}
		if r.Err() != nil {
			return "", r.Err()
		}
		if len(distinct) <= 50 {
			return target, nil
		}
		return "", nil
	}
	if sch.FieldIndices(s.stratify) == nil {
		ce := &pipeline.DataError{Stage: sc.Name, Column: s.stratify, Msg: "stratify column not found"}
		if sg := pipeline.Suggest(s.stratify, fieldNames(sch)); sg != "" {
			ce.Hint = fmt.Sprintf("did you mean %q?", sg)
		}
		return "", ce
	}
	return s.stratify, nil
}

func (s *splitStage) collect(ctx context.Context, sc *pipeline.StageContext, in *pipeline.Table, strat string) (*rowKeys, error) {
	sch := in.Schema()
	keys := &rowKeys{}
	classCode := map[string]int32{}
	var classVals []string
	r := sc.Scan(ctx, in)
	defer r.Release()
	for r.Next() {
		rec := r.RecordBatch()
		n := int(rec.NumRows())
		if strat != "" {
			vals, valid := arrowutil.Strings(rec.Column(sch.FieldIndices(strat)[0]))
			for i := range vals {
				k := "\x00null"
				if valid[i] {
					k = vals[i]
				}
				code, ok := classCode[k]
				if !ok {
					code = int32(len(classCode))
					classCode[k] = code
					classVals = append(classVals, k)
				}
				keys.classes = append(keys.classes, code)
			}
		}
		if s.groupBy != "" {
			keys.groups = append(keys.groups, hashValues(rec.Column(sch.FieldIndices(s.groupBy)[0]))...)
		}
		keys.n += n
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if keys.n == 0 {
		return nil, &pipeline.DataError{Stage: sc.Name, Msg: "the input table is empty"}
	}
	// Class codes in sorted value order, so the assignment does not depend on row order of
	// first appearance.
	if strat != "" {
		sorted := append([]string(nil), classVals...)
		sort.Strings(sorted)
		remap := make([]int32, len(classVals))
		for newCode, v := range sorted {
			remap[classCode[v]] = int32(newCode)
		}
		for i, c := range keys.classes {
			keys.classes[i] = remap[c]
		}
	}
	return keys, nil
}

func hashValues(arr arrow.Array) []uint64 {
	vals, valid := arrowutil.Strings(arr)
	out := make([]uint64, len(vals))
	for i, v := range vals {
		h := fnv.New64a()
		if valid[i] {
			h.Write([]byte{1})
			h.Write([]byte(v))
		} else {
			h.Write([]byte{0})
		}
		out[i] = h.Sum64()
	}
	return out
}

var splitRoleByName = map[string]features.Role{
	schema.SplitTrain: features.RoleTrain, schema.SplitVal: features.RoleVal, schema.SplitTest: features.RoleTest, schema.SplitTrainDev: features.RoleTrainDev,
}

// write streams the rows to the split tables and records the audit.
func (s *splitStage) write(ctx context.Context, sc *pipeline.StageContext, in *pipeline.Table, roles []features.Role, ratios features.Ratios, strat string, seed uint64) error {
	sch := in.Schema()
	// The split column is the assignment, not a feature: the output tables give it the split
	// role, so that no transform or model takes it as an input, and the duplicate audit below
	// does not hash it (every held-out row would otherwise look unique).
	outSch, err := splitColumnSchema(sch, s.column)
	if err != nil {
		return &pipeline.DataError{Stage: sc.Name, Column: s.column, Msg: err.Error(),
			Hint: "split on another column, or name the target another way in the source's target = [...]"}
	}
	tables := map[features.Role]*pipeline.Table{}
	for _, role := range []features.Role{features.RoleTrain, features.RoleVal, features.RoleTest, features.RoleTrainDev} {
		name := role.String()
		if role == features.RoleTrainDev && s.trainDev == 0 {
			continue
		}
		t, err := sc.NewTable(name, outSch, name, in.Lineage())
		if err != nil {
			return err
		}
		tables[role] = t
	}
	counts := map[features.Role]int{}
	classCounts := map[string]map[string]int{}
	groupRoles := map[uint64]map[features.Role]bool{}
	trainHashes := map[uint64]bool{}
	heldHashes := map[features.Role][]uint64{}
	var allRoles []features.Role
	row := 0
	r := sc.Scan(ctx, in)
	defer r.Release()
	step := func(rec arrow.RecordBatch) error {
		n := int(rec.NumRows())
		batchRoles := make([]features.Role, n)
		switch {
		case roles != nil:
			copy(batchRoles, roles[row:row+n])
		case s.column != "":
			vals, valid := arrowutil.Strings(rec.Column(sch.FieldIndices(s.column)[0]))
			ids := bundle.RowIDs(rec)
			for i := range vals {
				role, ok := splitRoleByName[vals[i]]
				if !valid[i] || !ok {
					return badSplitValue(sc.Name, s.column, ids[i], vals[i], valid[i])
				}
				if role == features.RoleTrain && s.trainDev > 0 {
					if features.HashRole(uint64(ids[i]), seed, features.Ratios{Train: 1 - s.trainDev, TrainDev: 0, Val: s.trainDev}) == features.RoleVal {
						role = features.RoleTrainDev
					}
				}
				batchRoles[i] = role
			}
		default: // hash mode
			var keys []uint64
			if s.groupBy != "" {
				keys = hashValues(rec.Column(sch.FieldIndices(s.groupBy)[0]))
			} else {
				for _, id := range bundle.RowIDs(rec) {
					keys = append(keys, uint64(id))
				}
			}
			for i, k := range keys {
				batchRoles[i] = features.HashRole(k, seed, ratios)
			}
		}
		row += n
		allRoles = append(allRoles, batchRoles...)
		// Audit: classes, groups, duplicates.
		if strat != "" {
			vals, valid := arrowutil.Strings(rec.Column(sch.FieldIndices(strat)[0]))
			for i, v := range vals {
				if !valid[i] {
					v = "null"
				}
				name := batchRoles[i].String()
				if classCounts[name] == nil {
					classCounts[name] = map[string]int{}
				}
				classCounts[name][v]++
			}
		}
		if s.groupBy != "" {
			for i, g := range hashValues(rec.Column(sch.FieldIndices(s.groupBy)[0])) {
				if groupRoles[g] == nil {
					groupRoles[g] = map[features.Role]bool{}
				}
				groupRoles[g][batchRoles[i]] = true
			}
		}
		hashes, err := features.RowHash(rec)
		if err != nil {
			return err
		}
		for i, h := range hashes {
			if batchRoles[i] == features.RoleTrain {
				trainHashes[h] = true
			} else {
				heldHashes[batchRoles[i]] = append(heldHashes[batchRoles[i]], h)
			}
		}
		// Route rows.
		idx := map[features.Role][]int{}
		for i, role := range batchRoles {
			idx[role] = append(idx[role], i)
		}
		for role, rows := range idx {
			t := tables[role]
			if t == nil {
				continue
			}
			part, err := arrowutil.Take(sc.Mem, rec, rows)
			if err != nil {
				return err
			}
			err = t.Append(part)
			part.Release()
			if err != nil {
				return err
			}
			counts[role] += len(rows)
		}
		return nil
	}
	for r.Next() {
		// The batch under the output schema: the same columns, the split column's role set.
		rec := r.RecordBatch()
		rec = array.NewRecordBatch(outSch, rec.Columns(), rec.NumRows())
		err := step(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	if row == 0 {
		return &pipeline.DataError{Stage: sc.Name, Msg: "the input table is empty"}
	}
	for role, t := range tables {
		if t.Rows() > 0 {
			continue
		}
		if s.column != "" {
			// The column decides: a split it never names stays empty, and a stage that reads
			// it reports the empty table.
			sc.Note("split_column %q names no %s row: %s is empty", s.column, role, sc.Name+"."+role.String())
			continue
		}
		return &pipeline.DataError{Stage: sc.Name, Msg: fmt.Sprintf("the %s split is empty (%d input rows)", role, row),
			Hint: "give larger ratios for it, fewer groups per split, or more rows"}
	}
	// Manifest: ratios asked and achieved, counts, group overlap, duplicates.
	achieved := features.AchievedRatios(allRoles)
	mode := "count"
	switch {
	case s.column != "":
		mode = "split_column"
	case s.hash:
		mode = "hash (shares approximate)"
	}
	sc.SetInfo("mode", mode)
	if s.column == "" {
		sc.SetInfo("ratios", map[string]float64{"train": ratios.Train - ratios.TrainDev, "train_dev": ratios.TrainDev, "val": ratios.Val, "test": ratios.Test})
	}
	sc.SetInfo("achieved", map[string]float64{"train": achieved.Train - achieved.TrainDev, "train_dev": achieved.TrainDev, "val": achieved.Val, "test": achieved.Test})
	if strat != "" {
		sc.SetInfo("stratified_by", strat)
		sc.SetInfo("class_counts", classCounts)
	}
	for role, n := range counts {
		sc.Metrics.Set(role.String()+"_rows", float64(n))
	}
	var overlap any
	if s.groupBy != "" {
		o := 0
		perSplit := map[string]int{}
		for _, rs := range groupRoles {
			if len(rs) > 1 {
				o++
			}
			for r := range rs {
				perSplit[r.String()]++
			}
		}
		overlap = o
		sc.SetInfo("group_counts", perSplit)
		sc.Metrics.Set("group_overlap", float64(o))
		if o > 0 {
			return fmt.Errorf("internal error: %d groups of %q landed in two splits", o, s.groupBy)
		}
	}
	dups := 0
	for _, hs := range heldHashes {
		for _, h := range hs {
			if trainHashes[h] {
				dups++
			}
		}
	}
	sc.Metrics.Set("duplicate_rows_across_splits", float64(dups))
	leakageOf(sc).setSplit(s.groupBy, overlap, dups)
	if dups > 0 {
		msg := fmt.Sprintf("%d held-out rows are exact duplicates of training rows (feature and target values): held-out metrics will be optimistic", dups)
		switch s.duplicates {
		case "fail":
			return &pipeline.DataError{Stage: sc.Name, Msg: msg, Hint: "deduplicate the data, or split with group_by on the entity the duplicates share"}
		case "warn":
			sc.Log.Warn().Int("rows", dups).Msg(msg)
		}
	}
	return nil
}

// splitColumnSchema returns s with the split column (if any) given the split role. A split
// column that is a target (or an id) cannot be both: that is an error.
func splitColumnSchema(s *arrow.Schema, column string) (*arrow.Schema, error) {
	if column == "" {
		return s, nil
	}
	idx := s.FieldIndices(column)
	if idx == nil {
		return nil, fmt.Errorf("no such column")
	}
	fields := s.Fields()
	f := fields[idx[0]]
	switch role := schema.Role(f); role {
	case schema.RoleFeature, schema.RoleSplit:
	default:
		return nil, fmt.Errorf("split_column %q has the %s role: a column that holds the split cannot also be a %s", column, role, role)
	}
	fields[idx[0]] = schema.WithRole(f, schema.RoleSplit)
	md := s.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

// badSplitValue is the error of a split column's value that names no split.
func badSplitValue(stage, column string, id int64, v string, valid bool) error {
	names := []string{schema.SplitTrain, schema.SplitVal, schema.SplitTest, schema.SplitTrainDev}
	e := &pipeline.DataError{Stage: stage, Row: id + 1, Column: column,
		Hint: "fix the column, or drop the row before the split"}
	if !valid {
		e.Msg = "the split value is null: every row needs one of train, val, test or train_dev"
		return e
	}
	e.Msg = fmt.Sprintf("split value %q is not train, val, test or train_dev", v)
	low := strings.ToLower(strings.TrimSpace(v))
	sg := pipeline.Suggest(low, names)
	for _, name := range names[:3] { // "validation" → val, "training" → train, "testing" → test
		if strings.HasPrefix(low, name) {
			sg = name
		}
	}
	if sg != "" {
		e.Hint = fmt.Sprintf("did you mean %q? Split values are exact (lower case, no spaces): fix the column, or drop the row before the split", sg)
	}
	return e
}
