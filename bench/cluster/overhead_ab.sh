#!/bin/bash
# The Temporal engine's overhead, two builds against each other and against the local executor:
# each round runs pipelines/mnist-ensemble.toml locally (NEW build), then on Temporal with the
# OLD build's client and worker, then with the NEW build's, on one dev server (one task queue
# and one stage store per build; one worker of 2 activity slots each), every stage computed
# and stored (--refresh load). Prints, per round, each side's wall time and CPU seconds (the
# local process; client, worker and server for Temporal), and the load average.
#
#   bench/cluster/overhead_ab.sh OLD_PIPE NEW_PIPE TEMPORAL_CLI MNIST_DIR ROUNDS SET WORK PORT
#
# e.g. overhead_ab.sh /tmp/pipe-old ./pipe ./temporal ~/mnist 3 members.member.epochs=2 /tmp/ab 17394
set -u
OLD=$1 NEW=$2 TEMPORAL=$3 DATA=$4 ROUNDS=$5 SET=$6 W=$7 PORT=$8
FILE=pipelines/mnist-ensemble.toml
mkdir -p "$W"
"$TEMPORAL" server start-dev --headless --ip 127.0.0.1 --port $PORT --db-filename "$W/t.db" --log-level warn >"$W/server.log" 2>&1 &
SERVER=$!
sleep 8
"$OLD" worker --temporal 127.0.0.1:$PORT --task-queue old --store "$W/store-old" --workers 2 --identity old --log-format json >"$W/w-old.log" 2>&1 &
WO=$!
"$NEW" worker --temporal 127.0.0.1:$PORT --task-queue new --store "$W/store-new" --workers 2 --identity new --log-format json >"$W/w-new.log" 2>&1 &
WN=$!
sleep 3
tck=$(getconf CLK_TCK)
cpu() { awk -v t=$tck '{print ($14+$15+$16+$17)/t}' /proc/$1/stat; }
now() { date +%s.%N; }
for r in $(seq $ROUNDS); do
  t0=$(now)
  /usr/bin/time -f "%U %S" -o "$W/cpu-local-$r" "$NEW" run $FILE --set "$SET" --data-dir "$DATA" --refresh load --no-report --no-progress --runs "$W/local" --store "$W/local-store" >"$W/local-$r.log" 2>&1 || echo "local failed"
  t1=$(now)
  for side in old new; do
    bin=$OLD; wp=$WO; [ $side = new ] && bin=$NEW && wp=$WN
    c0=$(cpu $wp); s0=$(cpu $SERVER); a=$(now)
    /usr/bin/time -f "%U %S" -o "$W/cpu-$side-$r" "$bin" run $FILE --set "$SET" --engine temporal --temporal 127.0.0.1:$PORT --task-queue $side --store "$W/store-$side" --data-dir "$DATA" --refresh load --no-report --no-progress --runs "$W/remote-$side" >"$W/remote-$side-$r.log" 2>&1 || echo "$side failed"
    b=$(now); c1=$(cpu $wp); s1=$(cpu $SERVER)
    read u s < "$W/cpu-$side-$r"
    eval "wall_$side=\$(awk \"BEGIN{print $b - $a}\")"
    eval "cpu_$side=\$(awk \"BEGIN{print $c1 - $c0 + $s1 - $s0 + $u + $s}\")"
  done
  read u s < "$W/cpu-local-$r"
  echo "round $r: wall local $(awk "BEGIN{print $t1 - $t0}") old $wall_old new $wall_new | cpu local $(awk "BEGIN{print $u + $s}") old $cpu_old new $cpu_new | load $(cut -d' ' -f1 /proc/loadavg)"
done
kill $WO $WN; wait $WO $WN 2>/dev/null
kill $SERVER
