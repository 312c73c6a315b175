package tableio_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/pipe-ml/pipe/internal/tableio"
)

// randomCSV writes a CSV with int, float (many textual forms), string (with quotes, commas
// and line breaks) and bool columns and some nulls, with CRLF or LF line ends.
func randomCSV(rng *rand.Rand, rows int) string {
	var b strings.Builder
	b.WriteString("id,x,label,flag\n")
	for i := 0; i < rows; i++ {
		eol := "\n"
		if rng.IntN(4) == 0 {
			eol = "\r\n"
		}
		id := strconv.Itoa(rng.IntN(2_000_000) - 1_000_000)
		if rng.IntN(20) == 0 {
			id = ""
		}
		var x string
		switch rng.IntN(5) {
		case 0:
			x = strconv.FormatFloat(rng.NormFloat64(), 'g', -1, 64)
		case 1:
			x = strconv.FormatFloat(rng.NormFloat64()*1e4, 'f', rng.IntN(8), 64)
		case 2:
			x = strconv.FormatFloat(math.Float64frombits(rng.Uint64()>>2), 'e', -1, 64)
		case 3:
			x = strconv.Itoa(rng.IntN(1000))
		default:
			x = "NA"
		}
		var label string
		switch rng.IntN(5) {
		case 0:
			label = fmt.Sprintf("\"a,%d\"", i)
		case 1:
			label = fmt.Sprintf("\"say \"\"%d\"\"\"", i)
		case 2:
			label = fmt.Sprintf("\"two\nlines %d\"", i)
		case 3:
			label = ""
		default:
			label = fmt.Sprintf("w%d", rng.IntN(50))
		}
		flag := []string{"true", "false", ""}[rng.IntN(3)]
		b.WriteString(id + "," + x + "," + label + "," + flag + eol)
	}
	return b.String()
}

// referenceRows parses text with encoding/csv and strconv: an independent reference.
func referenceRows(t *testing.T, text string) [][]string {
	t.Helper()
	cr := csv.NewReader(strings.NewReader(text))
	recs, err := cr.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, rec := range recs[1:] {
		row := make([]string, 4)
		for j, f := range rec {
			if f == "" || (f == "NA" && j != 2) {
				row[j] = null
				continue
			}
			switch j {
			case 0:
				row[j] = f
			case 1:
				v, err := strconv.ParseFloat(f, 64)
				if err != nil {
					t.Fatal(err)
				}
				row[j] = strconv.FormatFloat(v, 'g', -1, 64)
			default:
				row[j] = f
			}
		}
		out = append(out, row)
	}
	return out
}

func TestCSVReaderMatchesReferenceAndWorkers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	text := randomCSV(rng, 3000)
	// encoding/csv turns "\r\n" inside quotes into "\n"; pipe keeps field bytes as written.
	want := referenceRows(t, strings.ReplaceAll(text, "\r\n", "\n"))
	schema := arrow.NewSchema([]arrow.Field{{Name: "label", Type: arrow.BinaryTypes.String}}, nil)
	var first table
	for _, cfg := range []struct{ workers, batch int }{{1, 16384}, {1, 97}, {2, 97}, {3, 500}} {
		t.Run(fmt.Sprintf("workers=%d,batch=%d", cfg.workers, cfg.batch), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			r, err := tableio.NewCSVReader(strings.NewReader(text), mem,
				tableio.CSVOptions{Schema: schema, Workers: cfg.workers, BatchRows: cfg.batch, SampleRows: 5000})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Release()
			got, err := drain(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.types, ",") != "int64,float64,utf8,bool" {
				t.Fatalf("types %v", got.types)
			}
			for i := range got.rows {
				got.rows[i][2] = strings.ReplaceAll(got.rows[i][2], "\r\n", "\n")
			}
			if len(got.rows) != len(want) {
				t.Fatalf("%d rows, want %d", len(got.rows), len(want))
			}
			for i := range want {
				if strings.Join(got.rows[i], "|") != strings.Join(want[i], "|") {
					t.Fatalf("row %d = %q, want %q", i+1, got.rows[i], want[i])
				}
			}
			if cfg.batch == 97 {
				if first.rows == nil {
					first = got
				} else if fmt.Sprint(first.batchRows) != fmt.Sprint(got.batchRows) {
					t.Errorf("batch sizes differ between worker counts")
				}
			}
		})
	}
}

func TestCSVReaderFirstErrorInInputOrder(t *testing.T) {
	// Bad rows in several blocks: the reported one is the first in the input, whichever
	// worker finishes first.
	var b bytes.Buffer
	b.WriteString("a\n")
	for i := 1; i <= 2000; i++ {
		if i%300 == 0 {
			b.WriteString("oops\n")
		} else {
			b.WriteString("1\n")
		}
	}
	s := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil)
	for _, workers := range []int{1, 2, 4} {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		r, err := tableio.NewCSVReader(bytes.NewReader(b.Bytes()), mem, tableio.CSVOptions{Schema: s, Workers: workers, BatchRows: 50})
		if err != nil {
			t.Fatal(err)
		}
		got, err := drain(t, r)
		r.Release()
		mem.AssertSize(t, 0)
		var re *tableio.RowError
		if !errorsAs(err, &re) || re.Row != 300 || re.Line != 301 || len(got.rows) != 250 {
			t.Errorf("workers %d: err %v after %d rows, want row 300 line 301 after 250 rows", workers, err, len(got.rows))
		}
	}
}
