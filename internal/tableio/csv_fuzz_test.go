package tableio_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/pipe-ml/pipe/internal/tableio"
)

// FuzzCSVReader checks that the reader never panics or leaks, that batches are well formed
// and no larger than BatchRows, and that one and three workers give the same rows and the
// same error.
func FuzzCSVReader(f *testing.F) {
	for _, seed := range []string{
		"a,b\n1,2\n",
		"a,b\r\n\"x,\"\"y\"\"\n\",2.5\r\n3,\n",
		"\xef\xbb\xbfa\n1\n2.5\nNaN\n",
		"a,b,c\n1,2\n3,4,5,6\n\"open\n",
		"a\n\n\n1\n",
		"a;b\ntrue;false\n",
		"x\n1e400\n-0\n.5\n",
	} {
		f.Add([]byte(seed), false, uint8(2))
		f.Add([]byte(seed), true, uint8(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, skip bool, batch uint8) {
		opts := tableio.CSVOptions{BatchRows: int(batch%8) + 1, SampleRows: 3}
		if skip {
			opts.OnBadRow = tableio.OnBadRowSkip
		}
		var results []string
		for _, workers := range []int{1, 3} {
			opts.Workers = workers
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			r, err := tableio.NewCSVReader(bytes.NewReader(in), mem, opts)
			if err != nil {
				results = append(results, "open: "+err.Error())
				mem.AssertSize(t, 0)
				continue
			}
			got, err := drain(t, r)
			skipped := r.SkippedRows()
			r.Release()
			mem.AssertSize(t, 0)
			for _, n := range got.batchRows {
				if n < 1 || n > int64(opts.BatchRows) {
					t.Fatalf("batch of %d rows with BatchRows %d", n, opts.BatchRows)
				}
			}
			if !skip && skipped != 0 {
				t.Fatalf("skipped %d rows under the fail policy", skipped)
			}
			results = append(results, fmt.Sprintf("%v|%q|%v|%d", got.types, rowsText(got.rows), err, skipped))
		}
		if results[0] != results[1] {
			t.Fatalf("1 and 3 workers differ:\n%s\n%s", results[0], results[1])
		}
	})
}
