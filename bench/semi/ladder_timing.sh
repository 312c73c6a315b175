#!/bin/bash
# The full ladder's training step, pipe against PyTorch, side by side on one core (issue 17):
# pipe's ladder-full-ref.toml for 60 epochs of 9 steps (its steady-state seconds per step from
# the epoch log of its last 50 epochs), then bench/semi/ladder_full_torch.py for 450 steps, twice,
# interleaved. Usage (from the repository root, pipe built with -tags openblas):
#   PIPE=/tmp/pipe bench/semi/ladder_timing.sh [rounds]
set -euo pipefail
pipe=${PIPE:-/tmp/pipe}
out=$(mktemp -d)
for r in $(seq 1 "${1:-2}"); do
  OPENBLAS_NUM_THREADS=1 "$pipe" run bench/semi/ladder-full-ref.toml --no-progress --no-cache --set pipeline.workers=1 \
    --set full.epochs=60 --set full.schedule.decay_start=40 --log-format json --out "$out/p$r" > "$out/p$r.log" 2>&1
  python3 - "$out/p$r/log.jsonl" <<'PY'
import json, sys, datetime
ts = [json.loads(l) for l in open(sys.argv[1]) if '"message":"epoch"' in l]
t = {e["epoch"]: datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in ts}
secs = (t[59] - t[9]).total_seconds()  # epochs count from 0 in the log
print(json.dumps({"peer": "pipe", "threads": 1, "steps": 450, "seconds": secs, "steps_per_s": round(450 / secs, 2)}))
PY
  /usr/bin/python3 bench/semi/ladder_full_torch.py --steps 450 --threads 1
done
rm -rf "$out"
