#!/bin/bash
# Runs a pipeline for several seeds, one after the other, and prints each seed's test
# accuracies and wall time. Usage (from the repository root):
#   bench/semi/run.sh pipelines/mnist-semisupervised-ladder.toml "1 2 3 4 5" [--set ...]
# Build pipe first: go build -o /tmp/pipe ./cmd/pipe (or set PIPE).
set -euo pipefail
toml=$1; seeds=$2; shift 2
pipe=${PIPE:-/tmp/pipe}
out=${OUT:-/tmp/semi-bench}
mkdir -p "$out"
for s in $seeds; do
  start=$(date +%s)
  nice -n 5 "$pipe" run "$toml" --no-progress --no-cache --set pipeline.seed="$s" "$@" --out "$out/s$s" > "$out/s$s.log" 2>&1
  end=$(date +%s)
  echo "seed $s: $((end - start)) s wall, load $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -E "test_accuracy|  train  " "$out/s$s.log"
done
