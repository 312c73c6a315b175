package cli

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// trainedCredit trains the credit pipeline briefly and returns the run directory.
func trainedCredit(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	code, _, stderr := runCLI("run", "../pipelines/credit.toml", "--out", dir, "--log-format", "json", "--no-progress",
		"--set", "model.epochs=2", "--set", "pipeline.workers=1")
	if code != 0 {
		t.Fatalf("credit run: exit %d\n%s", code, stderr)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const creditHeader = "seniority,home,time,age,marital,records,job,expenses,income,assets,debt,amount,price"

// TestPredictServesRealRows scores raw rows as a user would: an integer column holding 37.5,
// an unseen category, an id column kept for the join, and the bundle named by its run
// directory.
func TestPredictServesRealRows(t *testing.T) {
	run := trainedCredit(t)
	tmp := t.TempDir()
	in := writeFile(t, filepath.Join(tmp, "rows.csv"), "customer,"+creditHeader+"\n"+
		"c-17,9,rent,60,37.5,married,no,freelance,73,129,0,0,800,846\n"+
		"c-18,17,rent,60,58,widow,no,astronaut,48,131,0,0,1000,1658\n")
	out := filepath.Join(tmp, "p.csv")
	code, stdout, stderr := runCLI("predict", "--model", run, "--input", in, "--output", out, "--keep", "customer")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "predicted 2 rows") {
		t.Errorf("stdout %q", stdout)
	}
	if !strings.Contains(stderr, `column "job": 1 row(s) have a category not seen in training`) {
		t.Errorf("the unseen category is not reported per column: %s", stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || strings.Join(recs[0][:3], ",") != "_row,customer,target_pred" || recs[1][1] != "c-17" || recs[2][1] != "c-18" {
		t.Errorf("predictions %v", recs)
	}
}

func TestPredictRefusesBadPaths(t *testing.T) {
	run := trainedCredit(t)
	tmp := t.TempDir()
	in := writeFile(t, filepath.Join(tmp, "rows.csv"), creditHeader+"\n9,rent,60,30,married,no,freelance,73,129,0,0,800,846\n")
	before, _ := os.ReadFile(in)
	link := filepath.Join(tmp, "link.csv")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, output, want string
	}{
		{"output is the input", in, "is the input file"},
		{"output is a link to the input", link, "is the input file"},
		{"output is a directory", tmp + "/", "is a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI("predict", "--model", run, "--input", in, "--output", c.output)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, %s", code, stderr)
			}
			if after, _ := os.ReadFile(in); string(after) != string(before) {
				t.Fatal("the input was changed")
			}
		})
	}
	// A directory given without a trailing slash, with a known extension.
	dirOut := filepath.Join(tmp, "out.csv")
	if err := os.Mkdir(dirOut, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI("predict", "--model", run, "--input", in, "--output", dirOut); code != 2 || !strings.Contains(stderr, "is a directory") {
		t.Errorf("directory output: exit %d, %s", code, stderr)
	}
	// Missing columns are listed, all of them, and no option predict lacks is suggested.
	short := writeFile(t, filepath.Join(tmp, "short.csv"), "seniority,home,time\n9,rent,60\n")
	code, _, stderr := runCLI("predict", "--model", run, "--input", short, "--output", filepath.Join(tmp, "q.csv"))
	if code != 1 || !strings.Contains(stderr, "10 of the 13 columns the model was trained on are missing: age, marital, records, job, expenses, income, assets, debt, amount, price") {
		t.Errorf("missing columns: exit %d, %s", code, stderr)
	}
	if strings.Contains(stderr, "schema") {
		t.Errorf("the error speaks of a schema the user did not declare: %s", stderr)
	}
	if _, err := os.Stat(filepath.Join(tmp, "q.csv")); err == nil {
		t.Error("a refused prediction left an output file")
	}
}

func TestSummaryOfRunAndStageDirs(t *testing.T) {
	run := trainedCredit(t)
	for _, path := range []string{run, filepath.Join(run, "stages", "model"), filepath.Join(run, "stages", "model", "bundle")} {
		code, stdout, stderr := runCLI("summary", path)
		if code != 0 || !strings.Contains(stdout, "preprocessing: impute") || !strings.Contains(stdout, "dense_1") {
			t.Errorf("summary %s: exit %d\n%s%s", path, code, stdout, stderr)
		}
	}
}

// TestSummaryOfEnsemble shows an ensemble bundle's members, its combiner and every member's
// layers.
func TestSummaryOfEnsemble(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, _, stderr := runCLI("run", "../pipelines/digits-ensemble.toml", "--out", dir, "--log-format", "json", "--no-progress",
		"--set", "members.members=3", "--set", `members.member={ layers = [ { dense = 16 } ], epochs = 2 }`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runCLI("summary", filepath.Join(dir, "stages", "vote"))
	if code != 0 {
		t.Fatalf("summary: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"ensemble: 3 members", "combined by vote", "member 0", "member 2", "dense_1", "preprocessing: normalize"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	// The run has four bundles (members, vote, mean, weighted): the run directory is ambiguous.
	code, _, stderr = runCLI("summary", dir)
	if code != 2 || !strings.Contains(stderr, "4 model bundles") {
		t.Errorf("summary of a run with several bundles: exit %d, %s", code, stderr)
	}
}
