package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/pipe-ml/pipe/pipeline"
	"github.com/pipe-ml/pipe/store"
)

// cmdGC is `pipe gc`: it removes from the stage store the entries no kept run refers to,
// oldest first, down to the size limit, and the stale leftovers of crashed writers.
func (a *app) cmdGC(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("gc", stderr)
	var runsDirs stringList
	fs.Var(&runsDirs, "runs", "a `DIR` of runs to keep: every run under it keeps the store entries its manifest refers to (repeatable; default runs)")
	storeURL := fs.String("store", "", "the stage store: a directory or file:///abs/dir `URL` (default: .store in the first --runs directory)")
	maxSize := fs.String("max-size", store.FormatBytes(store.DefaultMaxBytes), "remove entries no kept run refers to, oldest first, until the store holds at most `SIZE` (\"20GiB\"; 0 removes them all)")
	dryRun := fs.Bool("dry-run", false, "print what would be removed, remove nothing")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return a.usageError(stderr, "gc", "")
	}
	if len(pos) != 0 {
		return a.usageError(stderr, "gc", "takes no positional arguments")
	}
	limit, err := pipeline.ParseSize(*maxSize)
	if err != nil {
		return a.usageError(stderr, "gc", "--max-size: "+err.Error())
	}
	if len(runsDirs) == 0 {
		runsDirs = stringList{"runs"}
	}
	if *storeURL == "" {
		*storeURL = filepath.Join(runsDirs[0], ".store")
	}

	ctx := context.Background()
	s, err := store.OpenExisting(ctx, *storeURL)
	if err != nil {
		fmt.Fprintf(stderr, "pipe gc: %v (give the store with --store); nothing removed\n", err)
		return pipeline.ExitConfig
	}
	defer s.Close()
	kept, err := store.KeptKeys(runsDirs...)
	if err != nil {
		fmt.Fprintf(stderr, "pipe gc: %v; nothing removed\n", err)
		return pipeline.ExitConfig
	}
	rep, err := store.GC(ctx, s, store.GCOptions{Kept: kept, MaxBytes: limit, DryRun: *dryRun})
	printGC(stdout, s.URL(), rep, kept)
	if err != nil {
		fmt.Fprintf(stderr, "pipe gc: %v\n", err)
		return pipeline.ExitFailed
	}
	return 0
}

// printGC prints what gc removed (or would remove) and kept.
func printGC(w io.Writer, url string, rep store.GCReport, kept map[string]bool) {
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
	}
	for _, r := range rep.Removed {
		what := string(r.State)
		if r.Entry != nil {
			what = fmt.Sprintf("%s stage %q, created %s", r.Entry.Kind, r.Entry.Stage, r.Entry.CreatedAt.Local().Format(time.DateTime))
		}
		fmt.Fprintf(w, "%s %s (%s, %s): %s\n", verb, r.Prefix, what, store.FormatBytes(r.Bytes), r.Reason)
	}
	if rep.TempFiles > 0 {
		fmt.Fprintf(w, "%s %d stale temporary files (%s)\n", verb, rep.TempFiles, store.FormatBytes(rep.TempBytes))
	}
	referenced := 0
	var referencedBytes int64
	for _, e := range rep.Kept {
		if e.State == store.Committed && kept[e.Key] {
			referenced++
			referencedBytes += e.Bytes
		}
	}
	fmt.Fprintf(w, "kept %d entries, %d of them referred to by kept runs (%s)\n", len(rep.Kept), referenced, store.FormatBytes(referencedBytes))
	limit := "no limit: every entry no kept run refers to is removed"
	if rep.MaxBytes > 0 {
		limit = "limit " + store.FormatBytes(rep.MaxBytes)
	}
	after := "after"
	if rep.DryRun {
		after = "after a gc (dry run: nothing removed)"
	}
	fmt.Fprintf(w, "store %s: %s before, %s %s (%s)\n", url, store.FormatBytes(rep.BytesBefore), store.FormatBytes(rep.BytesAfter), after, limit)
	if rep.MaxBytes > 0 && rep.BytesAfter > rep.MaxBytes {
		fmt.Fprintf(w, "the store stays over its limit: kept runs refer to %s; remove old run directories, then run gc again\n", store.FormatBytes(referencedBytes))
	}
}
