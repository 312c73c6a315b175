#!/bin/sh
# The mapped path's throughput against the in-memory path's (issue #20), for a quiet machine:
# 1M rows x 50 float32, 2 epochs, ROUNDS interleaved rounds of the in-memory path (budget
# 4GiB), the mapped path (64MiB) and the mapped path reading with pread instead of io_uring
# (PIPE_NO_IO_URING=1); prints every run and the medians of the train stage's rows/s. Run
# from the repository root: sh bench/stream/quiet.sh [ROUNDS]. About 3 minutes on a quiet
# 2-core machine with 7 rounds (the first run also writes the data, ~40 s).
set -e
rounds=${1:-7}
dir=${STREAM_DIR:-/tmp/pipe-stream-bench}
mkdir -p "$dir"
go build -o "$dir/stream" ./bench/stream
[ -f "$dir/data/train.parquet" ] || "$dir/stream" gen -dir "$dir/data" -rows 1000000
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
: > "$dir/runs.txt"
for r in $(seq "$rounds"); do
	for b in 4GiB 64MiB 64MiB-pread; do
		case $b in
		*-pread) env PIPE_NO_IO_URING=1 "$dir/stream" run -dir "$dir/data" -budget 64MiB -epochs 2 ;;
		*) "$dir/stream" run -dir "$dir/data" -budget "$b" -epochs 2 ;;
		esac 2>/dev/null | sed "s/^/$b /" | tee -a "$dir/runs.txt"
	done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
med() {
	grep "^$1 " "$dir/runs.txt" | sed 's/.*"rows_per_second":\([0-9.e+]*\).*/\1/' | sort -g |
		awk '{v[NR]=$1} END {if (NR%2) m=v[(NR+1)/2]; else m=(v[NR/2]+v[NR/2+1])/2; printf "%.0f\n", m}'
}
dense=$(med 4GiB)
mapped=$(med 64MiB)
pread=$(med 64MiB-pread)
echo "median rows/s: in-memory $dense, mapped $mapped ($(awk "BEGIN {printf \"%.1f%%\", 100*$mapped/$dense}")), mapped with pread $pread ($(awk "BEGIN {printf \"%.1f%%\", 100*$pread/$dense}"))"
