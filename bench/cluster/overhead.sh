#!/bin/bash
# The Temporal engine's overhead against the local executor, on one machine:
# pipelines/mnist-ensemble.toml (8 members) run alternately with `pipe run` (local) and with
# `pipe run --engine temporal` on a dev server and pipe workers of the same machine, every
# stage computed and stored as a default run stores it (--refresh load: each side writes its
# stage store, as a run with the cache on does). Prints each run's wall time and the medians.
#
#   bench/cluster/overhead.sh PIPE TEMPORAL_CLI MNIST_DIR [PAIRS] [WORKERS_x_SLOTS...]
#
# e.g. overhead.sh ./pipe ./temporal ~/mnist 3 1x8 3x3: 3 pairs with one worker of 8
# activity slots, then 3 pairs with three workers of 3 slots each.
set -u
PIPE=$(readlink -f "$1") TEMPORAL=$(readlink -f "$2") DATA=$(readlink -f "$3") PAIRS=${4:-3}
shift 4 2>/dev/null || shift $#
LAYOUTS=${*:-1x8}
FILE=${FILE:-pipelines/mnist-ensemble.toml} # another pipeline: FILE=... overhead.sh
# SET: --set overrides for both sides, e.g. SET="members.member.epochs=2" (space-separated).
SETS=()
for s in ${SET:-}; do SETS+=(--set "$s"); done
W=${WORK:-$(mktemp -d)} # WORK=dir keeps the logs there
mkdir -p "$W"
echo "cores $(nproc); pipe $($PIPE version); load $(cut -d' ' -f1-3 /proc/loadavg); logs in $W; ${SET:+set $SET}"
"$TEMPORAL" server start-dev --headless --ip 127.0.0.1 --port ${PORT:-17233} --db-filename "$W/t.db" --log-level warn >"$W/server.log" 2>&1 &
SERVER=$!
sleep 8
now() { date +%s.%N; }
for layout in $LAYOUTS; do
	n=${layout%x*} slots=${layout#*x}
	pids=()
	for i in $(seq "$n"); do
		"$PIPE" worker --temporal 127.0.0.1:${PORT:-17233} --store "$W/store" --workers "$slots" --identity "w$i" --log-format json >"$W/w$i-$layout.log" 2>&1 &
		pids+=($!)
	done
	sleep 2
	for p in $(seq "$PAIRS"); do
		t0=$(now)
		"$PIPE" run $FILE "${SETS[@]}" --data-dir "$DATA" --refresh load --no-report --no-progress --runs "$W/local" --store "$W/local-store" >"$W/local-$p.log" 2>&1 || { echo "local run failed"; tail -5 "$W/local-$p.log"; }
		t1=$(now)
		"$PIPE" run $FILE "${SETS[@]}" --engine temporal --temporal 127.0.0.1:${PORT:-17233} --store "$W/store" --data-dir "$DATA" --refresh load --no-report --no-progress --runs "$W/remote" >"$W/remote-$p.log" 2>&1 || { echo "temporal run failed"; tail -5 "$W/remote-$p.log"; }
		t2=$(now)
		echo "$layout pair $p: local $(awk "BEGIN{print $t1 - $t0}") s, temporal $(awk "BEGIN{print $t2 - $t1}") s, load $(cut -d' ' -f1 /proc/loadavg)"
	done
	kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
done
python3 - "$W" <<'PY'
import glob, json, os, statistics, sys
w = sys.argv[1]
def runs(d):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{w}/{d}/*/*/manifest.json"), key=os.path.getmtime)]
loc, rem = runs("local"), runs("remote")
same = len(loc) == len(rem) > 0 and all(a["stages"][n]["metrics"] == b["stages"][n]["metrics"] for a, b in zip(loc, rem) for n in a["stage_order"])
print(f"metrics identical local vs temporal in every pair: {same}")
print("largest payload:", max(m.get("remote", {}).get("max_payload_bytes", 0) for m in rem), "bytes")
l = statistics.median(m["seconds"] for m in loc)
r = statistics.median(m["seconds"] for m in rem)
print(f"manifest seconds, medians over all pairs: local {l:.1f} s, temporal {r:.1f} s, overhead {100 * (r - l) / l:+.1f}%")
for m in rem[-1:]:
    for n in m["stage_order"]:
        st = m["stages"][n]
        parts = (st.get("remote") or {}).get("parts", [])
        print(f"  last temporal run: {n}: {st['seconds']:.1f} s" + (f", parts {min(p['seconds'] for p in parts):.1f}-{max(p['seconds'] for p in parts):.1f} s on {sorted({p['worker'] for p in parts})}" if parts else ""))
PY
kill $SERVER
