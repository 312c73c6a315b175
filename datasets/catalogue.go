package datasets

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// Info describes a dataset of the catalogue.
type Info struct {
	Name         string   // the name Open takes
	Rows         int      // data rows
	Features     int      // feature columns (the target not included)
	Task         string   // "classification" or "regression"
	Classes      int      // number of classes; 0 for regression
	Target       string   // the label column, "target"
	Categorical  []string // categorical feature columns (utf8)
	MissingCells int      // empty fields in the data
	Embedded     bool     // the CSV is compiled into the binary (false: MNIST)
	Source       string   // where the data comes from, one line
	License      string   // the license of the package and of the data, one line
}

// meta is the shape of data/<name>/meta.json.
type meta struct {
	Name         string   `json:"name"`
	Task         string   `json:"task"`
	Rows         int      `json:"rows"`
	Features     int      `json:"features"`
	Target       string   `json:"target"`
	Categorical  []string `json:"categorical"`
	MissingCells int      `json:"missing_cells"`
	Classes      *int     `json:"n_classes"`
}

// List describes every dataset, MNIST included, sorted by name. A directory of the embedded
// catalogue whose meta.json does not parse is left out (TestList guards against that).
func List() []Info {
	var out []Info
	for _, name := range names() {
		if info, err := Lookup(name); err == nil {
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Lookup describes one dataset.
func Lookup(name string) (Info, error) {
	raw, err := files.ReadFile("data/" + name + "/meta.json")
	if err != nil {
		return Info{}, fmt.Errorf("dataset %q is not in the catalogue (datasets: %s)", name, strings.Join(names(), ", "))
	}
	var m meta
	if err := json.Unmarshal(raw, &m); err != nil {
		return Info{}, fmt.Errorf("dataset %q: meta.json: %w", name, err)
	}
	info := Info{Name: name, Rows: m.Rows, Features: m.Features, Task: m.Task, Target: m.Target,
		Categorical: m.Categorical, MissingCells: m.MissingCells}
	if m.Classes != nil {
		info.Classes = *m.Classes
	}
	if info.Categorical == nil {
		info.Categorical = []string{}
	}
	_, err = fs.Stat(files, "data/"+name+"/"+name+".csv")
	info.Embedded = err == nil
	if src, err := files.ReadFile("data/" + name + "/SOURCE.md"); err == nil {
		info.Source = markdownItem(string(src), "Source")
		info.License = markdownItem(string(src), "License")
	}
	return info, nil
}

// names lists the catalogue's dataset names.
func names() []string {
	entries, _ := fs.ReadDir(files, "data")
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// markdownItem returns the text of the list item "- **key**: text" of a SOURCE.md, with
// the Markdown emphasis and code marks removed.
func markdownItem(doc, key string) string {
	prefix := "- **" + key + "**:"
	for _, line := range strings.Split(doc, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.NewReplacer("**", "", "`", "").Replace(strings.TrimSpace(rest))
		}
	}
	return ""
}
