package features

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/schema"
)

// TestEncodeOneHotCreditData fits one-hot on credit_data's train split and checks categories
// (sorted distinct non-null train values), column layout and every val/test row against a
// naive encoding.
func TestEncodeOneHotCreditData(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	d := loadDataset(t, "credit_data")
	trainRows := d.rows(schema.SplitTrain)
	train := d.record(t, mem, schema.SplitTrain, trainRows)
	defer train.Release()
	tr := fitBatches(t, NewEncodeFitter(EncodeOptions{}), train, 1000)
	catCols := []string{"home", "marital", "records", "job"}
	cols := tr.Describe()["columns"].(map[string]any)
	if len(cols) != len(catCols) {
		t.Fatalf("encoded %d columns, want %v", len(cols), catCols)
	}
	want := map[string][]string{}
	for _, name := range catCols {
		j := d.column(t, name)
		seen := map[string]bool{}
		for _, i := range trainRows {
			if s := d.strs[j][i]; s != "" {
				seen[s] = true
			}
		}
		for s := range seen {
			want[name] = append(want[name], s)
		}
		slices.Sort(want[name])
		if got := cols[name].(map[string]any)["categories"].([]string); !slices.Equal(got, want[name]) {
			t.Fatalf("%s categories %v, want %v", name, got, want[name])
		}
	}
	for _, split := range []string{schema.SplitVal, schema.SplitTest} {
		rows := d.rows(split)
		in := d.record(t, mem, split, rows)
		out, err := tr.Apply(context.Background(), mem, in)
		if err != nil {
			t.Fatal(err)
		}
		// Layout: each categorical column replaced in place by its one-hot columns.
		var wantNames []string
		for _, f := range in.Schema().Fields() {
			if w, ok := want[f.Name]; ok {
				for _, v := range w {
					wantNames = append(wantNames, f.Name+"="+v)
				}
			} else {
				wantNames = append(wantNames, f.Name)
			}
		}
		if got := columnNames(out.Schema()); !slices.Equal(got, wantNames) {
			t.Fatalf("output columns %v, want %v", got, wantNames)
		}
		for _, name := range catCols {
			j := d.column(t, name)
			for k, i := range rows {
				for _, v := range want[name] {
					var w float32
					if d.strs[j][i] == v {
						w = 1
					}
					if got := float32Column(t, out, name+"="+v).Value(k); got != w {
						t.Fatalf("%s row %d (%q): %s=%s is %g, want %g", split, i, d.strs[j][i], name, v, got, w)
					}
				}
			}
		}
		out.Release()
		in.Release()
	}
}

// TestEncodeUnknownAndNull: a category first seen at apply time and a null map to all zeros
// (onehot) or 0 (index), are counted, and do not fail.
func TestEncodeUnknownAndNull(t *testing.T) {
	for _, method := range []string{EncodeOneHot, EncodeIndex} {
		t.Run(method, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			train := makeRecord(t, mem, schema.SplitTrain, rowColumn(1, 2, 3),
				testColumn{name: "job", str: []string{"fixed", "partime", "fixed"}})
			defer train.Release()
			tr := fitBatches(t, NewEncodeFitter(EncodeOptions{Categorical: method}), train, 3)
			val := makeRecord(t, mem, schema.SplitVal, rowColumn(4, 5, 6, 7),
				testColumn{name: "job", str: []string{"partime", "pilot", "", "astronaut"}, valid: []bool{true, true, false, true}})
			defer val.Release()
			out, err := tr.Apply(context.Background(), mem, val)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			if method == EncodeOneHot {
				fixed, partime := float32Column(t, out, "job=fixed"), float32Column(t, out, "job=partime")
				for i, w := range [][2]float32{{0, 1}, {0, 0}, {0, 0}, {0, 0}} {
					if fixed.Value(i) != w[0] || partime.Value(i) != w[1] {
						t.Errorf("row %d: (%g, %g), want %v", i, fixed.Value(i), partime.Value(i), w)
					}
				}
			} else {
				idx := out.Column(1).(*array.Int32)
				if got, want := idx.Int32Values(), []int32{2, 0, 0, 0}; !slices.Equal(got, want) {
					t.Errorf("codes %v, want %v", got, want)
				}
				f := out.Schema().Field(1)
				if i := f.Metadata.FindKey(KeyCardinality); i < 0 || f.Metadata.Values()[i] != "3" {
					t.Errorf("field metadata %v, want %s = 3 (2 categories + the 0 bucket)", f.Metadata, KeyCardinality)
				}
			}
			c := tr.Counters()
			if c["unknown_categories"] != 2 || c["unknown_by_column/job"] != 2 || c["null_by_column/job"] != 1 {
				t.Errorf("counters %v, want 2 unknown and 1 null for job", c)
			}
		})
	}
}

// TestEncodeInputTypes: dictionary, large_utf8 and bool columns encode like utf8.
func TestEncodeInputTypes(t *testing.T) {
	words := []string{"b", "a", "c", "a", "b"}
	tests := []struct {
		name string
		col  testColumn
		cats []string
		idx  []int32
	}{
		{"utf8", testColumn{name: "v", str: words}, []string{"a", "b", "c"}, []int32{2, 1, 3, 1, 2}},
		{"large_utf8", testColumn{name: "v", large: words}, []string{"a", "b", "c"}, []int32{2, 1, 3, 1, 2}},
		{"dictionary", testColumn{name: "v", dict: words}, []string{"a", "b", "c"}, []int32{2, 1, 3, 1, 2}},
		{"bool", testColumn{name: "v", boo: []bool{true, false, true, true, false}}, []string{"false", "true"}, []int32{2, 1, 2, 2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			rec := makeRecord(t, mem, "", tc.col)
			defer rec.Release()
			tr := fitBatches(t, NewEncodeFitter(EncodeOptions{Categorical: EncodeIndex}), rec, 2)
			if got := tr.Describe()["columns"].(map[string]any)["v"].(map[string]any)["categories"].([]string); !slices.Equal(got, tc.cats) {
				t.Fatalf("categories %v, want %v", got, tc.cats)
			}
			out, err := tr.Apply(context.Background(), mem, rec)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Release()
			if got := out.Column(0).(*array.Int32).Int32Values(); !slices.Equal(got, tc.idx) {
				t.Errorf("codes %v, want %v", got, tc.idx)
			}
		})
	}
}

// TestEncodeOneHotGuard: more categories than MaxCardinality is an error that suggests index;
// index mode accepts them.
func TestEncodeOneHotGuard(t *testing.T) {
	mem := newCheckedAllocator()
	defer mem.AssertSize(t, 0)
	vals := make([]string, 60)
	for i := range vals {
		vals[i] = "c" + strconv.Itoa(i)
	}
	rec := makeRecord(t, mem, "", testColumn{name: "zip", str: vals})
	defer rec.Release()
	tests := []struct {
		opts    EncodeOptions
		wantErr bool
	}{
		{EncodeOptions{}, true},
		{EncodeOptions{MaxCardinality: 59}, true},
		{EncodeOptions{MaxCardinality: 60}, false},
		{EncodeOptions{Categorical: EncodeIndex}, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%+v", tc.opts), func(t *testing.T) {
			f := NewEncodeFitter(tc.opts)
			err := f.Observe(rec)
			if err == nil {
				_, err = f.Finish()
			}
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), `"index"`) || !strings.Contains(err.Error(), `"zip"`) {
					t.Fatalf("err = %v, want an error naming the column and suggesting index", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
}
