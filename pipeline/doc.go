// Package pipeline is pipe's public API: the pipeline config (TOML → typed, validated spec), the
// DAG, the Stage interfaces, the Registry of stage kinds, the executor, the run directory and
// its manifest.
//
// # Loading
//
// A pipeline file is decoded in steps, as Prometheus does: defaults, then a strict decode in
// which an unknown key is an error with a suggestion, then validation that collects every
// problem (types, ranges, enums, references, port kinds, split roles, cycles, each kind's own
// checks) and returns them together as *ConfigError values joined with errors.Join, sorted by
// position. Nested tables (a layer, an optimizer, an ensemble's member) are declared in the
// spec like top-level keys (Field.Fields, Field.Elem) and checked the same way.
//
// # Stages
//
// A stage kind declares a KindSpec: its fields (name, type, default, doc), its output ports and
// a constructor. Kinds are installed into a Registry value by explicit registration; this
// package registers none. A Stage computes in Run, reading its inputs and writing its outputs
// through a *StageContext.
//
// # Data
//
// An edge carries a *Table or an Artifact. A Table is an append-only, replayable stream of
// Arrow record batches: a consumer may start reading while the producer is still writing, and
// may scan it again (once per epoch). Batches stay in memory while the run's memory budget
// allows, and spill to an Arrow IPC file in the run directory beyond it, so data larger than
// RAM flows with bounded memory.
//
// Ownership follows arrow-go: a Table holds one reference to each batch it stores; a reader's
// RecordBatch is valid until the next call to Next, and a caller that keeps it Retains it.
//
// # Runs
//
// Run executes a pipeline: every stage runs in its own goroutine, owned by one errgroup; the
// first error cancels the run; a stage waits only for the ports it reads. The run directory
// holds the resolved config, manifest.json, log.jsonl and stages/<name>/.
package pipeline
