package datasets

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed data
var files embed.FS

// Embedded lists the datasets whose CSV is compiled into the binary, sorted by name.
func Embedded() []string {
	entries, _ := fs.ReadDir(files, "data")
	var names []string
	for _, e := range entries {
		if _, err := fs.Stat(files, "data/"+e.Name()+"/"+e.Name()+".csv"); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// CSV returns the raw bytes of an embedded dataset's CSV file (header row, target last).
func CSV(name string) ([]byte, error) {
	b, err := files.ReadFile("data/" + name + "/" + name + ".csv")
	if err != nil {
		return nil, fmt.Errorf("dataset %q: not embedded (embedded: %s)", name, strings.Join(Embedded(), ", "))
	}
	return b, nil
}

// SplitColumn returns the shipped split (train/val/test per data row, in file order) that the
// peer baselines in BENCH.md were measured on.
func SplitColumn(name string) ([]string, error) {
	b, err := files.ReadFile("data/" + name + "/" + name + ".split.csv")
	if err != nil {
		return nil, fmt.Errorf("dataset %q: no shipped split", name)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != "split" {
		return nil, fmt.Errorf("dataset %q: split file has no 'split' header", name)
	}
	out := make([]string, 0, len(lines)-1)
	for _, l := range lines[1:] {
		out = append(out, strings.TrimSpace(l))
	}
	return out, nil
}
