// Package runinfo reads the runs a pipe command left on disk, for people and scripts that watch
// scheduled jobs: List lists the runs under a runs directory (runs/<pipeline>/<run-id>/, each
// with its manifest.json), newest first, with their status as pipeline.ReadRun tells it (a
// "running" manifest whose process is gone is "crashed"), duration, the headline metric of
// each evaluate stage and how many stages came from the cache; Compare sets two runs side by
// side: the differences of their resolved configs (pipeline.toml, key by key, nested keys
// included, named as `pipe run --set` names them) and of their metrics.
//
// It only reads: nothing here writes into a run directory or takes its lock. A run whose
// manifest cannot be read is listed with the status StatusUnreadable and the reason, never
// dropped and never an error of the whole listing.
//
// The JSON forms of Run and Comparison (their json tags) are what `pipe runs --format json`
// and `pipe compare --format json` print; fields may be added, none changes meaning.
package runinfo
