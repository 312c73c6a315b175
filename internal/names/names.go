// Package names holds the small helpers that error messages share: the closest name to a
// misspelling ("did you mean"), and lists of names cut to a readable length.
package names

import (
	"fmt"
	"strings"
)

// Suggest returns the candidate closest to s by edit distance (case-insensitive), or "" when
// none is close enough to be what the user meant.
func Suggest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := Distance(strings.ToLower(s), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) > 6 {
		limit = 3
	}
	if bestD <= limit || (best != "" && (strings.HasPrefix(best, s) || strings.HasPrefix(s, best)) && len(s) >= 3) {
		return best
	}
	return ""
}

// Distance is the optimal-string-alignment distance: insertions, deletions, substitutions and
// transpositions of adjacent characters each cost one.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// List joins names with ", ", cut after max names with a count of the rest:
// "a, b, c, ... (and 17 more)". max < 1 means no cut.
func List(names []string, max int) string {
	if max < 1 || len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, ... (and %d more)", strings.Join(names[:max], ", "), len(names)-max)
}
