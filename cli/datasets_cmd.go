package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/pipe-ml/pipe/datasets"
)

func cmdDatasets(args []string, stdout, stderr io.Writer) int {
	w := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tROWS\tFEATURES\tTASK\tCLASSES\tMISSING\tWHERE\tLICENSE")
	for _, d := range datasets.List() {
		where := "embedded"
		if !d.Embedded {
			where = "module cache (GoMNIST) or --data-dir"
		}
		classes := "-"
		if d.Classes > 0 {
			classes = fmt.Sprint(d.Classes)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%d\t%s\t%s\n", d.Name, d.Rows, d.Features, d.Task, classes, d.MissingCells, where, d.License)
	}
	w.Flush()
	return 0
}
