package stages

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTruncatedGzipFailsTheSource: a .csv.gz cut short fails the csv source, naming the file
// and saying it is truncated, even with on_bad_row = "skip" (which used to drop the cut row
// and succeed on part of the file).
func TestTruncatedGzipFailsTheSource(t *testing.T) {
	dir := t.TempDir()
	var plain bytes.Buffer
	plain.WriteString("a,b,target\n")
	for i := range 20000 {
		fmt.Fprintf(&plain, "%d,%d.25,%d\n", i, i*7%1000, i%2)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	cut := gz.Bytes()[:gz.Len()/2]
	if err := os.WriteFile(filepath.Join(dir, "d.csv.gz"), cut, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{"fail", "skip"} {
		src := fmt.Sprintf("[stages.load]\nkind = \"csv\"\npath = \"d.csv.gz\"\non_bad_row = %q\n[stages.save]\nkind = \"write\"\ninput = \"load\"\npath = \"out.csv\"\n", policy)
		_, _, err := runTOML(t, dir, src)
		if err == nil {
			t.Fatalf("on_bad_row = %q: a truncated file read without error", policy)
		}
		for _, want := range []string{`stage "load"`, "d.csv.gz", "truncated"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("on_bad_row = %q: error lacks %q: %v", policy, want, err)
			}
		}
	}
}

// TestSemicolonFileGetsADelimiterHint: a ;-separated file read with the default delimiter
// gets a warning in the source's notes, and the error it causes (a named target that is not
// a column) carries the same hint.
func TestSemicolonFileGetsADelimiterHint(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "d.csv"), []byte("x;y;target\n1;2;0\n3;4;1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, err := runTOML(t, dir, "[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\n")
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(m.Stages["load"].Notes, "\n")
	if !strings.Contains(notes, `set delimiter = ";"`) || !strings.Contains(notes, "d.csv") {
		t.Errorf("no delimiter warning in the notes: %q", notes)
	}
	_, _, err = runTOML(t, dir, "[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\ntarget = \"target\"\n")
	if err == nil || !strings.Contains(err.Error(), `set delimiter = ";"`) {
		t.Errorf("the missing target's error has no delimiter hint: %v", err)
	}
	m, _, err = runTOML(t, dir, "[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\ndelimiter = \";\"\ntarget = \"target\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Stages["load"].Notes) != 0 {
		t.Errorf("notes with the right delimiter: %v", m.Stages["load"].Notes)
	}
}

// TestRandomSampleWithOneWorker: a random sample counts the rows in a pass of its own before
// the main reader takes the CPU, so with [pipeline] workers = 1 (one token, which a reader
// holds until it ends) the count does not wait forever for the main reader's token.
func TestRandomSampleWithOneWorker(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("x,target\n")
	for i := range 100 {
		fmt.Fprintf(&b, "%d,%d\n", i, i%2)
	}
	if err := os.WriteFile(filepath.Join(dir, "d.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, err := runTOML(t, dir, "[pipeline]\nworkers = 1\n[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\nlimit = 10\nsample = \"random\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Stages["load"].RowsOut; got != 10 {
		t.Errorf("sampled %d rows, want 10", got)
	}
}
