#!/bin/sh
# Ensemble scaling (issue #20): an 8-member bag of MLP-128s on MNIST, one epoch each, for
# splits of the cores between members trained at once and GEMM threads per member; 3 runs of
# each split, interleaved. Pass the splits for the machine (default: its cores, found by nproc).
#   bench/ensemble/run.sh                 # 2 cores: 1x1, 2x1, 1x2
#   bench/ensemble/run.sh 1x1,8x1,16x1,8x2,4x4,2x8,1x16
# Extra flags go to the command (e.g. -dataset digits -epochs 5).
set -e
cd "$(dirname "$0")/../.."
splits="$1"
[ $# -gt 0 ] && shift
if [ -z "$splits" ]; then
	n=$(nproc)
	if [ "$n" -ge 16 ]; then
		splits=1x1,8x1,16x1,8x2,4x4,2x8,1x16
	else
		splits=1x1,${n}x1,1x${n}
	fi
fi
go build -o /tmp/pipe-ensemble-bench ./bench/ensemble
exec /tmp/pipe-ensemble-bench -dataset mnist -members 8 -epochs 1 -hidden 128 -splits "$splits" -repeat 3 "$@"
