package names

import (
	"fmt"
	"strings"
	"testing"
)

func TestSuggest(t *testing.T) {
	cands := []string{"epochs", "dropout", "layers", "optimizer"}
	for _, c := range []struct{ in, want string }{
		{"epoch", "epochs"}, {"dropot", "dropout"}, {"DROPOUT", "dropout"}, {"optimiser", "optimizer"},
		{"lyaers", "layers"}, {"zzz", ""}, {"batch_size", ""},
	} {
		if got := Suggest(c.in, cands); got != c.want {
			t.Errorf("Suggest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "", 3}, {"abc", "abc", 0}, {"abc", "acb", 1}, {"kitten", "sitting", 3}, {"é", "e", 1}} {
		if got := Distance(c.a, c.b); got != c.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
}

func TestList(t *testing.T) {
	var ns []string
	for i := 0; i < 25; i++ {
		ns = append(ns, fmt.Sprintf("c%d", i))
	}
	got := List(ns, 20)
	if !strings.HasSuffix(got, "c19, ... (and 5 more)") || strings.Contains(got, "c20") {
		t.Errorf("List(25 names, 20) = %q", got)
	}
	if got := List(ns[:3], 20); got != "c0, c1, c2" {
		t.Errorf("List(3) = %q", got)
	}
	if got := List(ns, 0); strings.Contains(got, "more") {
		t.Errorf("List(max 0) cut: %q", got)
	}
}
