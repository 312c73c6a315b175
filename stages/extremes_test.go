package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHugeRegressionLabelIsLocated: a 1e200 target value is an error that names the column
// and the row, not "no training row has a label".
func TestHugeRegressionLabelIsLocated(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("x,y\n")
	for i := 0; i < 60; i++ {
		y := fmt.Sprintf("%d.5", i)
		if i == 7 {
			y = "1e200"
		}
		fmt.Fprintf(&b, "%d,%s\n", i, y)
	}
	if err := os.WriteFile(filepath.Join(dir, "d.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `
[stages.load]
kind = "csv"
path = "d.csv"
target = "y"
[stages.model]
kind = "train"
train = "load"
epochs = 1
`
	_, _, err := runTOML(t, dir, src)
	if err == nil {
		t.Fatal("a 1e200 label trained")
	}
	msg := err.Error()
	if strings.Contains(msg, "no training row has a label") || !strings.Contains(msg, `column "y"`) || !strings.Contains(msg, "row 8") || !strings.Contains(msg, "does not fit float32") {
		t.Errorf("error %q: want the column y, row 8 and the reason", msg)
	}
}
