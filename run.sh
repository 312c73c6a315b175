#!/usr/bin/env bash
# The two commands of the README, for a fresh machine:
#   ./run.sh example   build pipe and run pipelines/digits-mlp.toml end to end on the embedded digits dataset
#   ./run.sh test      run the whole test suite with -race (what CI runs) on the pure-Go build; then
#                      without -race the zero-allocation tests, and the learning packages at full
#                      size with their accuracy floors, on the openblas build when available
#   ./run.sh cluster-demo  a Temporal dev server, three pipe workers and pipelines/digits-ensemble.toml
#                      run on them, on this machine
# Set-up happens here: Go modules are downloaded, and Debian's libopenblas-dev is installed when
# apt-get can (root, reachable mirror); without it pipe builds and runs in pure Go. For `test`,
# Debian's chromium is installed the same way, for the run report's tests in a real browser,
# and python3-optuna, for the TPE sampler's test against Optuna's own.
set -euo pipefail
cd "$(dirname "$0")"

need_go() {
	if ! command -v go >/dev/null 2>&1; then
		echo "run.sh: Go 1.26 or newer is needed (https://go.dev/dl/); it is not on PATH" >&2
		exit 2
	fi
	local v
	v=$(go env GOVERSION | sed 's/^go//')
	case "$v" in
	1.2[6-9]* | 1.[3-9]* | [2-9].*) ;;
	*) echo "run.sh: Go $v is too old; pipe needs Go 1.26 or newer" >&2; exit 2 ;;
	esac
}

have_openblas() {
	[ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/openblas/cblas.h ] || [ -e /usr/include/cblas.h ] ||
		ls /usr/include/*/cblas.h >/dev/null 2>&1
}

# apt_install PACKAGE PURPOSE FALLBACK installs a Debian package when apt-get can (root, a
# reachable mirror), saying what for, and when it cannot, what happens instead.
apt_install() {
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "run.sh: installing $1 (Debian) $2" >&2
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1") >/dev/null 2>&1 ||
			echo "run.sh: could not install $1; $3" >&2
	fi
}

setup_openblas() {
	if have_openblas; then return 0; fi
	apt_install libopenblas-dev "for the openblas build" "using the pure-Go build"
	have_openblas
}

have_chromium() {
	[ -n "${PIPE_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
		command -v google-chrome >/dev/null 2>&1
}

# setup_chromium installs Debian's chromium for the tests of the run report in a real browser
# (report/render_browser_test.go); without it those tests skip, saying so.
setup_chromium() {
	if have_chromium; then return 0; fi
	apt_install chromium "for the browser tests of the run report" "the browser tests of the run report will skip"
	have_chromium
}

have_optuna() {
	[ -n "${PIPE_PYTHON:-}" ] || { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import optuna' >/dev/null 2>&1; }
}

# setup_optuna installs Debian's python3-optuna (3.1) for the test that compares the search's
# TPE sampler with Optuna's own (search/tpe_optuna_test.go); without it that test skips.
setup_optuna() {
	if have_optuna; then return 0; fi
	apt_install python3-optuna "for the test of the TPE sampler against Optuna's" "the TPE sampler's comparison with Optuna will skip"
	have_optuna
}

# The Temporal CLI, whose dev server the tests of the Temporal executor run against
# (internal/temporaltest). Built from source with the pinned version into .cache/ (git ignores
# it), once per clone.
temporal_cli_version=v1.5.1
temporal_cli_dir=.cache/temporal-$temporal_cli_version

# setup_temporal builds the Temporal CLI into $temporal_cli_dir when it is not there yet and
# exports PIPE_TEMPORAL_CLI (a PIPE_TEMPORAL_CLI already set is kept); when the build fails,
# the tests that need a Temporal server skip, saying so.
setup_temporal() {
	if [ -n "${PIPE_TEMPORAL_CLI:-}" ]; then return 0; fi
	local bin="$PWD/$temporal_cli_dir/temporal"
	if [ ! -x "$bin" ]; then
		echo "run.sh: building the Temporal CLI $temporal_cli_version into $temporal_cli_dir for the Temporal tests (a few minutes the first time)" >&2
		local tmp="$PWD/$temporal_cli_dir.tmp" log="$PWD/$temporal_cli_dir.log"
		rm -rf "$tmp" && mkdir -p "$tmp" "$PWD/$temporal_cli_dir"
		if ! GOBIN="$tmp" go install "github.com/temporalio/cli/cmd/temporal@$temporal_cli_version" >"$log" 2>&1 ||
			! mv -f "$tmp/temporal" "$bin"; then
			echo "run.sh: could not build the Temporal CLI (its log: $log, ends with:)" >&2
			tail -n 5 "$log" >&2 || true
			echo "run.sh: the tests that need a Temporal server will skip" >&2
			rm -rf "$tmp"
			return 1
		fi
		rm -rf "$tmp"
	fi
	export PIPE_TEMPORAL_CLI="$bin"
}

build_tags() {
	if have_openblas; then echo "openblas"; fi
}

case "${1:-}" in
example)
	need_go
	setup_openblas || true
	tags=$(build_tags)
	go mod download
	go build -tags "$tags" -o bin/pipe ./cmd/pipe
	echo "run.sh: built bin/pipe (tags: ${tags:-none}); running pipelines/digits-mlp.toml" >&2
	exec ./bin/pipe run pipelines/digits-mlp.toml "${@:2}"
	;;
cluster-demo)
	# One machine playing a cluster: a Temporal dev server, three `pipe worker` processes sharing
	# a stage store, and one pipeline run through them (extra arguments go to `pipe run`).
	need_go
	setup_temporal || { echo "run.sh: cluster-demo needs the Temporal CLI" >&2; exit 1; }
	go mod download
	go build -tags "$(build_tags)" -o bin/pipe ./cmd/pipe
	demo=$(mktemp -d "${TMPDIR:-/tmp}/pipe-cluster-demo.XXXXXX")
	port=${PIPE_DEMO_PORT:-$((20000 + RANDOM % 20000))}
	pids=()
	cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
	trap cleanup EXIT
	"$PIPE_TEMPORAL_CLI" server start-dev --headless --ip 127.0.0.1 --port "$port" --db-filename "$demo/temporal.db" --log-level warn >"$demo/server.log" 2>&1 &
	pids+=($!)
	echo "run.sh: Temporal dev server on 127.0.0.1:$port; logs, store and runs in $demo" >&2
	for i in 1 2 3; do
		./bin/pipe worker --temporal "127.0.0.1:$port" --store "$demo/store" --identity "worker-$i" --log-level warn >"$demo/worker-$i.log" 2>&1 &
		pids+=($!)
	done
	for _ in $(seq 60); do # the server takes a few seconds to answer
		if ./bin/pipe runs --temporal "127.0.0.1:$port" >/dev/null 2>&1; then break; fi
		sleep 1
	done
	./bin/pipe run pipelines/digits-ensemble.toml --engine temporal --temporal "127.0.0.1:$port" --store "$demo/store" --runs "$demo/runs" "${@:2}"
	;;
test)
	need_go
	setup_openblas || true
	setup_chromium || true
	setup_optuna || true
	setup_temporal || true
	go mod download
	echo "== go vet" >&2
	go vet ./...
	if [ -n "$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" ]; then
		echo "run.sh: gofmt would change:" >&2
		gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go') >&2
		exit 1
	fi
	echo "== staticcheck (v0.8.2, pinned here)" >&2
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	echo "== go test -race ./... (pure Go)" >&2
	go test -race -count=1 -timeout 40m ./...
	# The race detector makes sync.Pool drop items, so the zero-allocation tests skip under
	# -race; run them once without it (a test in cli keeps this list complete).
	echo "== go test (no -race): the zero-allocation tests" >&2
	go test -count=1 -timeout 10m -run 'TestTrainStepDoesNotAllocate|TestSgemmAllocatesNothing' ./nn ./internal/sgemm
	# Under -race (5-15 times slower) the learning tests run shortened and leave their accuracy
	# floors and leads unchecked; this pass checks them at full size, on the build that
	# `./run.sh example` makes: the openblas one when OpenBLAS is available.
	tags=$(build_tags)
	echo "== go test (no -race, tags: ${tags:-none}): the learning tests' floors and leads" >&2
	if [ -z "$tags" ]; then
		echo "run.sh: OpenBLAS not available: the openblas build was not tested" >&2
	fi
	go test -count=1 -timeout 30m -tags "$tags" ./nn/... ./internal/sgemm/... ./ensemble/... ./pretrain/... ./features/... ./stages/...
	;;
*)
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
