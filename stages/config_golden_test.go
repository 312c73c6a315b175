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
