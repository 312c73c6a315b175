package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIDColumnWarning: a feature column that is a distinct integer on every row (an id) gets
// a warning note at train time naming it and saying how to drop it, whether it reaches the
// train stage as integers or scaled by normalize, and in an ensemble; a real feature does not.
func TestIDColumnWarning(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("customer_id,x,target\n")
	for i := range 200 {
		// x repeats (i%37), customer_id does not; both are integers.
		fmt.Fprintf(&b, "%d,%d,%d\n", 1000+i, i%37, i%2)
	}
	if err := os.WriteFile(filepath.Join(dir, "d.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	head := "[pipeline]\nseed = 1\n[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
		"[stages.scale]\nkind = \"normalize\"\nfit = \"split.train\"\n"
	cases := []struct{ name, src, stage string }{
		{"raw", head + "[stages.m]\nkind = \"train\"\ntrain = \"split.train\"\nepochs = 1\n", "m"},
		{"normalized", head + "[stages.m]\nkind = \"train\"\ntrain = \"scale.train\"\nepochs = 1\n", "m"},
		{"ensemble", head + "[stages.e]\nkind = \"ensemble\"\ntrain = \"scale.train\"\nmembers = 2\nmember = { epochs = 1 }\n", "e"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, _, err := runTOML(t, dir, c.src)
			if err != nil {
				t.Fatal(err)
			}
			notes := strings.Join(m.Stages[c.stage].Notes, "\n")
			for _, want := range []string{`"customer_id"`, "row id", `ignore = ["customer_id"]`} {
				if !strings.Contains(notes, want) {
					t.Errorf("notes lack %q: %q", want, notes)
				}
			}
			if strings.Contains(notes, `"x"`) {
				t.Errorf("x is a feature, not an id: %q", notes)
			}
		})
	}
	// Dropped on the source: no warning.
	m, _, err := runTOML(t, dir, strings.Replace(cases[0].src, "path = \"d.csv\"\n", "path = \"d.csv\"\nignore = [\"customer_id\"]\n", 1))
	if err != nil {
		t.Fatal(err)
	}
	if notes := strings.Join(m.Stages["m"].Notes, "\n"); strings.Contains(notes, "row id") {
		t.Errorf("warning without the id column: %q", notes)
	}
}

// TestEncodeNoCategoricalIsANoteInThePipeline: an encode stage on a numeric table passes it
// through with a note instead of failing the run.
func TestEncodeNoCategoricalIsANoteInThePipeline(t *testing.T) {
	src := "[stages.load]\nkind = \"dataset\"\nname = \"iris\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
		"[stages.enc]\nkind = \"encode\"\nfit = \"split.train\"\n[stages.m]\nkind = \"train\"\ntrain = \"enc\"\nepochs = 1\n"
	m, _, err := runTOML(t, ".", src)
	if err != nil {
		t.Fatal(err)
	}
	if notes := strings.Join(m.Stages["enc"].Notes, "\n"); !strings.Contains(notes, "no string, dictionary or bool feature column") {
		t.Errorf("encode notes: %q", notes)
	}
	if got, want := float64(m.Stages["enc"].RowsOut), m.Stages["split"].Metrics["train_rows"]; got != want || got == 0 {
		t.Errorf("encode passed %v rows, want the %v training rows", got, want)
	}
}

// TestMissingColumnErrorsAreShort: a missing target in a wide file lists 20 columns, counts
// the rest, and suggests a close name.
func TestMissingColumnErrorsAreShort(t *testing.T) {
	dir := t.TempDir()
	var names, row []string
	for i := range 40 {
		names = append(names, fmt.Sprintf("pixel_%02d", i))
		row = append(row, "0")
	}
	names = append(names, "label")
	row = append(row, "1")
	text := strings.Join(names, ",") + "\n" + strings.Join(row, ",") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "wide.csv"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := runTOML(t, dir, "[stages.load]\nkind = \"csv\"\npath = \"wide.csv\"\ntarget = \"lable\"\n")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`did you mean "label"`, "pixel_19, ... (and 21 more)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "pixel_20") {
		t.Errorf("the list is not cut: %v", err)
	}
}
