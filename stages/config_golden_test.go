package stages

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pipe-ml/pipe/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/config")

// mistakeMark is the comment that marks a line with mistakes in a *.bad.toml file: "# <-", or
// "# <- 3" for three.
var mistakeMark = regexp.MustCompile(`#\s*<-\s*(\d*)\s*$`)

// TestConfigGolden loads every testdata/config/*.toml with the built-in kinds, as `pipe
// validate` does: *.good.toml must load; *.bad.toml must fail with exactly the text of its
// .golden file (the test's directory written $DIR), and with one error per mistake marked in
// it, each on its marked line.
func TestConfigGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/config/*.toml")
	if len(files) == 0 {
		t.Fatal("no config test files")
	}
	dir, err := filepath.Abs("testdata/config")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := pipeline.Load(f, registry(t), pipeline.LoadOptions{})
			if strings.HasSuffix(f, ".good.toml") {
				if err != nil {
					t.Fatalf("want no error, got:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("want errors, got none")
			}
			src, rerr := os.ReadFile(f)
			if rerr != nil {
				t.Fatal(rerr)
			}
			marked := map[int]int{} // line → mistakes
			total := 0
			for i, line := range strings.Split(string(src), "\n") {
				if m := mistakeMark.FindStringSubmatch(line); m != nil {
					n := 1
					if m[1] != "" {
						n, _ = strconv.Atoi(m[1])
					}
					marked[i+1] = n
					total += n
				}
			}
			errs := pipeline.ConfigErrors(err)
			if len(errs) != total {
				t.Errorf("%d errors, want the %d marked in the file:\n%v", len(errs), total, err)
			}
			got := map[int]int{}
			for i, e := range errs {
				got[e.Line]++
				if marked[e.Line] == 0 {
					t.Errorf("error on an unmarked line: %v", e)
				}
				if i > 0 && (e.Line < errs[i-1].Line || e.Line == errs[i-1].Line && e.Col < errs[i-1].Col) {
					t.Errorf("errors not sorted by position: %v after %v", e, errs[i-1])
				}
			}
			for line, n := range marked {
				if got[line] != n {
					t.Errorf("line %d: %d errors, want %d", line, got[line], n)
				}
			}
			text := strings.ReplaceAll(err.Error()+"\n", dir, "$DIR")
			golden := strings.TrimSuffix(f, ".toml") + ".golden"
			if *update {
				if werr := os.WriteFile(golden, []byte(text), 0o644); werr != nil {
					t.Fatal(werr)
				}
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("no golden file (run with -update): %v", rerr)
			}
			if text != string(want) {
				t.Errorf("error text differs\n got:\n%s\nwant:\n%s", text, want)
			}
		})
	}
}

// TestHostileConfigs: wrong shapes inside nested tables, and --set into nested keys, are
// config errors at the key, each saying what is wrong, when the pipeline loads.
func TestHostileConfigs(t *testing.T) {
	base := "[stages.load]\nkind = \"dataset\"\nname = \"iris\"\n[stages.split]\nkind = \"split\"\ninput = \"load\"\n" +
		"[stages.model]\nkind = \"train\"\ntrain = \"split.train\"\nval = \"split.val\"\n"
	cases := []struct {
		extra string
		set   string
		key   string
		msg   string
	}{
		{"layers = { dense = 16 }\n", "", "layers", "expected array, found a table"},
		{"optimizer = [ \"adam\" ]\n", "", "optimizer", "expected table, found an array"},
		{"early_stopping = \"yes\"\n", "", "early_stopping", "expected boolean or table"},
		{"layers = [ { dense = 16, residual = 8 } ]\n", "", "layers[0]", "a layer has one type, found dense and residual"},
		{"layers = [ {} ]\n", "", "layers[0]", "no layer type"},
		{"layers = [ { batch_norm = false } ]\n", "", "layers[0]", "batch_norm = false is no layer"},
		{"layers = [ { type = \"dense\" } ]\n", "", "layers[0]", `type = "dense" needs units`},
		{"layers = [ { batch_norm = true, dropout = 0.3 } ]\n", "", "layers[0]", "dropout does not apply to a batch_norm layer"},
		{"layers = [ { type = \"dropout\", dropout = 0.3 } ]\n", "", "layers[0]", `dropout does not apply to a dropout layer (type = "dropout" takes rate)`},
		{"layers = [ { dropout = 0.2, activation = \"relu\" } ]\n", "", "layers[0]", "a dropout layer has no activation"},
		{"layers = [ { dense = 8, norm = \"layer_norm\" } ]\n", "", "layers[0]", "norm does not apply to a dense layer"},
		{"layers = [ { dense = 3, name = \"a\" }, { dense = 3, name = \"a\" } ]\n", "", "layers[1].name", `layer name "a" is taken by layers[0]`},
		{"layers = [ { dense = 16.0 } ]\n", "", "layers[0].dense", "expected an integer, found the float 16 (write 16)"},
		{"tasks = { target = 3 }\n", "", "tasks.target", "expected table, found the integer 3"},
		{"tasks = { target = { class_weight = [1, \"x\"] } }\n", "", "tasks.target.class_weight", "element 1: expected a number"},
		{"class_weight = \"balancd\"\n", "", "class_weight", `"balancd" is not "balanced"`},
		{"batch_growth = { factor = 2 }\n", "", "batch_growth.every_epochs", "required key is missing"},
		{"unfreeze = { every_epochs = 0 }\n", "", "unfreeze.every_epochs", "0 is below the minimum 1"},
		{"[stages.model.optimizer]\nlr = -1\n", "", "optimizer.lr", "-1 must be above 0"},
		{"", "model.optimizer.lr=abc", "optimizer.lr", `expected a number or "auto", found the string "abc"`},
		{"", "model.epochs=99999999999999999999", "epochs", "out of range"},
		{"", "model.layers[0].dense=3", "layers", "is not set"},
		{"layers = [ { dense = 4 } ]\n", "model.layers[0].dropot=0.1", "layers[0].dropot", "unknown key"},
	}
	for _, c := range cases {
		var sets []string
		if c.set != "" {
			sets = []string{c.set}
		}
		_, err := pipeline.Parse([]byte(base+c.extra), "p.toml", ".", registry(t), pipeline.LoadOptions{Overrides: sets})
		errs := pipeline.ConfigErrors(err)
		if len(errs) != 1 || errs[0].Stage != "model" || errs[0].Key != c.key || !strings.Contains(errs[0].Msg, c.msg) {
			t.Errorf("%q %s: got %v, want %s: %s", c.extra, c.set, err, c.key, c.msg)
			continue
		}
		if c.set != "" && (errs[0].File != "--set" || errs[0].Arg != c.set) {
			t.Errorf("%s: not reported at the --set argument: %#v", c.set, errs[0])
		}
		if c.set == "" && errs[0].Line == 0 {
			t.Errorf("%q: no line: %v", c.extra, errs[0])
		}
	}
}

// TestResolvedConfigHasAbsoluteDataPaths: a source's path is written absolute into the
// resolved config, which then loads from anywhere (a run directory).
func TestResolvedConfigHasAbsoluteDataPaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "d.csv"), []byte("a,target\n1,x\n2,y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Parse([]byte("[stages.load]\nkind = \"csv\"\npath = \"d.csv\"\n"), "p.toml", dir, registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := pipeline.Parse(p.Resolved(), "pipeline.toml", t.TempDir(), registry(t), pipeline.LoadOptions{})
	if err != nil {
		t.Fatalf("the resolved config does not load from another directory: %v\n%s", err, p.Resolved())
	}
	load, _ := again.Stage("load")
	if want := filepath.Join(dir, "d.csv"); load.String("path") != want {
		t.Errorf("resolved path = %q, want %q", load.String("path"), want)
	}
}
