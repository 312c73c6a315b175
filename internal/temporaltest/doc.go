// Package temporaltest runs a real Temporal server for tests: the Temporal CLI's dev server
// (`temporal server start-dev`), one process per Start, on a free loopback port, with its
// state in an SQLite file, stopped when the test ends.
//
// The CLI is found at $PIPE_TEMPORAL_CLI, else as `temporal` on PATH. `./run.sh test` builds
// the pinned CLI (github.com/temporalio/cli v1.5.1) into .cache/ on its first run and sets
// PIPE_TEMPORAL_CLI; without a CLI, Start skips the test and says how to get one.
//
// Restart stops the process and starts it again on the same port and the same database file,
// so workflows started before it are still there after it: this is how a test kills the
// server in the middle of a run. Kill stops it abruptly (SIGKILL), as a crash would.
//
// The server is a separate process rather than go.temporal.io/server compiled into the test
// binary: the CLI is built once, without -race, and cached, while an embedded server would be
// compiled again, with race instrumentation, into every test binary that uses it, and would
// pin pipe's go.mod to the server's Go version and dependency versions.
package temporaltest
