package tableio_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/pipe-ml/pipe/internal/tableio"
)

// TestLongHeaderListsAreCut: an error that lists a wide file's header names the first 20
// columns and counts the rest.
func TestLongHeaderListsAreCut(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var names, row []string
	for i := range 25 {
		names = append(names, fmt.Sprintf("c%02d", i))
		row = append(row, "1")
	}
	text := strings.Join(names, ",") + "\n" + strings.Join(row, ",") + "\n"
	decl := arrow.NewSchema([]arrow.Field{{Name: "nope", Type: arrow.PrimitiveTypes.Int64}}, nil)
	_, err := tableio.NewCSVReader(strings.NewReader(text), mem, tableio.CSVOptions{Schema: decl})
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "c19, ... (and 5 more)") || strings.Contains(err.Error(), "c20") {
		t.Errorf("the header list is not cut after 20 names: %v", err)
	}
}
