package features

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/pipe-ml/pipe/schema"
)

// TestMarshalRoundTrip: every kind, marshalled and unmarshalled, gives the same output as the
// original transform on held-out rows, and the same Describe.
func TestMarshalRoundTrip(t *testing.T) {
	d := loadDataset(t, "credit_data")
	trainRows, testRows := d.rows(schema.SplitTrain), d.rows(schema.SplitTest)
	fitters := []struct {
		name string
		new  func() Fitter
	}{
		{"normalize standard", func() Fitter { return NewNormalizeFitter(NormalizeOptions{}) }},
		{"normalize robust", func() Fitter { return NewNormalizeFitter(NormalizeOptions{Method: NormalizeRobust}) }},
		{"impute", func() Fitter { return NewImputeFitter(ImputeOptions{Indicator: true}) }},
		{"encode onehot", func() Fitter { return NewEncodeFitter(EncodeOptions{}) }},
		{"encode index", func() Fitter { return NewEncodeFitter(EncodeOptions{Categorical: EncodeIndex}) }},
	}
	for _, fc := range fitters {
		t.Run(fc.name, func(t *testing.T) {
			mem := newCheckedAllocator()
			defer mem.AssertSize(t, 0)
			train := d.record(t, mem, schema.SplitTrain, trainRows)
			defer train.Release()
			orig := fitBatches(t, fc.new(), train, 700)
			b, err := Marshal(orig)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if back.Kind() != orig.Kind() {
				t.Fatalf("kind %q, want %q", back.Kind(), orig.Kind())
			}
			d1, _ := json.Marshal(orig.Describe())
			d2, _ := json.Marshal(back.Describe())
			if string(d1) != string(d2) {
				t.Errorf("Describe differs after the round trip:\n%s\n%s", d1, d2)
			}
			in := d.record(t, mem, schema.SplitTest, testRows)
			defer in.Release()
			want, err := orig.Apply(context.Background(), mem, in)
			if err != nil {
				t.Fatal(err)
			}
			defer want.Release()
			got, err := back.Apply(context.Background(), mem, in)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Release()
			if !got.Schema().Equal(want.Schema()) || !array.RecordEqual(got, want) {
				t.Fatalf("round-tripped transform's output differs:\n%v\n%v", got.Schema(), want.Schema())
			}
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	tests := []struct {
		name, json, errHas string
	}{
		{"not json", "{", "not valid JSON"},
		{"other format", `{"format":"x","version":1,"kind":"normalize","state":{}}`, "format"},
		{"newer", `{"format":"` + FormatName + `","version":99,"kind":"normalize","state":{}}`, "version 99"},
		{"unknown kind", `{"format":"` + FormatName + `","version":1,"kind":"pca","state":{}}`, `unknown kind "pca"`},
		{"bad state", `{"format":"` + FormatName + `","version":1,"kind":"normalize","state":{"method":"standard"}}`, "no columns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.errHas)
			}
		})
	}
}
