#!/usr/bin/env bash
# Side-by-side speed of pipe's conv layers and PyTorch 1.13 (CPU, one thread) on the same
# networks: forward + loss + backward + SGD step, batch 64 (see torch_conv.py and
# nn/bench_conv_test.go, BenchmarkConvPeer*). The two run INTERLEAVED, case by case (peer,
# pipe, peer, pipe, ...), so that a change in the machine's load hits both; each prints
# samples/s over the wall clock and over its CPU time (steadier on a loaded machine), and the
# summary is the median over rounds and the ratio pipe / PyTorch.
#
# Usage: bench/conv/run.sh [rounds]   (default 5; CASES="residual" runs only that case, or
# any space-separated subset of cnn conv1x1 residual). Needs Debian's python3-torch:
#   apt-get install --no-install-recommends python3-torch
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}

py=""
for p in /usr/bin/python3 python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' 2>/dev/null; then
		py=$p
		break
	fi
done
if [ -z "$py" ]; then
	echo "run.sh: no python3 with torch; install Debian's python3-torch (apt-get install --no-install-recommends python3-torch)" >&2
	exit 1
fi

bin=$(mktemp -d)/nn.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./nn

# case name, Go benchmark, steps per measurement
cases=""
for c in cnn:CNN:10 conv1x1:Conv1x1:100 residual:Residual:40; do
	case " ${CASES:-cnn conv1x1 residual} " in *" ${c%%:*} "*) cases="$cases $c" ;; esac
done
if [ -z "$cases" ]; then
	echo "run.sh: CASES=\"$CASES\" names no case: want any of cnn conv1x1 residual" >&2
	exit 1
fi
res=$(mktemp)
trap 'rm -rf "$(dirname "$bin")" "$res"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)   torch $("$py" -c 'import torch; print(torch.__version__)')   one thread each"
for ((i = 1; i <= rounds; i++)); do
	for c in $cases; do
		IFS=: read -r name bench steps <<<"$c"
		peer=$("$py" bench/conv/torch_conv.py "$name" --reps 3 --steps "$steps" |
			sed -n 's/.*samples_per_s=\([0-9.]*\) samples_per_cpu_s=\([0-9.]*\).*/\1 \2/p')
		pipe=$(GOMAXPROCS=1 "$bin" -test.run '^$' -test.bench "^BenchmarkConvPeer${bench}\$" -test.benchtime "${steps}x" |
			awk '/samples\/s/ { for (i = 1; i < NF; i++) { if ($(i+1) == "samples/s") w = $i; if ($(i+1) == "samples/cpu-s") c = $i } print w, c }')
		read -r pw pc <<<"$peer"
		read -r qw qc <<<"$pipe"
		printf 'round %d  %-9s  pytorch %8.1f/s %8.1f/cpu-s   pipe %8.1f/s %8.1f/cpu-s\n' "$i" "$name" "$pw" "$pc" "$qw" "$qc"
		echo "$name $pw $qw $pc $qc" >>"$res"
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-9s  %10s %10s %7s   %12s %12s %7s\n' case "pytorch/s" "pipe/s" ratio "pytorch/cpu-s" "pipe/cpu-s" ratio
for c in $cases; do
	name=${c%%:*}
	awk -v n="$name" '
		function median(a, k,   i, j, t) {
			for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
			return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
		}
		$1 == n { k++; pw[k] = $2; qw[k] = $3; pc[k] = $4; qc[k] = $5 }
		END {
			a = median(pw, k); b = median(qw, k); c = median(pc, k); d = median(qc, k)
			printf "%-9s  %10.1f %10.1f %6.2fx   %12.1f %12.1f %6.2fx\n", n, a, b, b / a, c, d, d / c
		}' "$res"
done
echo "(medians over $rounds interleaved rounds; ratio = pipe / pytorch, > 1 means pipe is faster)"
