#!/usr/bin/python3
"""One configuration trained with many seeds by each trainer: pipe and the Optuna peer's
PyTorch loop (optuna_peer.py's objective), to compare the spread of the val objective.

  spread.py PIPELINE --record N [--record N]... [--k 20] [--peer-jobs 1] [--pipe BIN] [--set stage.key=value]...

Each --record is a line number (from 0) of bench/search/results.jsonl; its best_params (a
configuration a search chose) are set on the pipeline's search base, as measure.py's retrain
does, and trained k times on each side with the record's run seed:

  - pipe: a search of k trials over a one-value space (rounds = 1, no pruning): the trials'
    seeds come from (run seed, stage, trial), the val objective is each trial's own;
  - PyTorch: the peer with the same one-value space, k trials, --peer-jobs at a time (1; the
    searches ran 2), the median pruner held off (its warm-up longer than any run): trial t's
    generator is seeded with seed * 100003 + t, as in the searches.

Both read the same split and features and train the same model with the same early stopping.
The question (bench/search/README.md, "Session 18"): is one run's val objective noisier in one
trainer than in the other, so that the best of a search's 150 draws is lower there for the
noise alone? Each record's values go to --log (default bench/search/spread.jsonl) as one
JSON line per side; a table of mean, standard deviation, min and max is printed.
"""
import argparse, json, os, statistics, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import measure  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("--record", type=int, action="append", required=True)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--peer-jobs", type=int, default=1, help="the peer's trials at once (Optuna threads)")
    ap.add_argument("--same-seed", action="store_true",
                    help="the peer only, its first trial seeded as the record's best trial (the search's "
                         "own run of the config, again), the others as the trials after it")
    ap.add_argument("--pipe", help="a pipe binary (default: go build)")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--results", default=os.path.join(HERE, "results.jsonl"))
    ap.add_argument("--log", default=os.path.join(HERE, "spread.jsonl"))
    args = ap.parse_args()
    lines = open(args.results).read().splitlines()
    tmp = tempfile.mkdtemp(prefix="pipe-spread-")
    pipe = args.pipe or measure.build_pipe(tmp)
    log = open(args.log, "a")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows = []
    for n in args.record:
        rec = json.loads(lines[n])
        seed, params = rec["seed"], rec["best_params"]
        sets = list(args.set)
        stage, cfg = measure.fixed_config(args.pipeline, sets, params)
        epochs = int(cfg.get("epochs", 200))
        l0 = measure.load()
        sides = []
        if not args.same_seed:
            vals, wall = measure.retrain(pipe, args.pipeline, seed, sets, tmp, params, args.k)
            sides.append({"side": "pipe", "values": vals, "wall_s": wall})
        body = dict(cfg)
        body.pop("epochs", None)
        peer_sets = sets + [f"{stage}.base={measure.toml_value(body)}",
                            f'{stage}.space={{ "epochs" = {{ choice = [{epochs}] }} }}',
                            f"{stage}.trials={args.k}",
                            f'{stage}.prune={{ method = "median", min_epochs = {epochs + 1} }}']
        extra = ["--first-trial", str(rec["best_trial"])] if args.same_seed else []
        peer = measure.run_peer(args.pipeline, seed, peer_sets, tmp, args.peer_jobs, 1, extra)
        if peer["completed"] != args.k:
            raise SystemExit(f"record {n}: the peer completed {peer['completed']} of {args.k} trials")
        sides.append({"side": "pytorch", "values": peer["values"], "wall_s": peer["wall_s"],
                      "epochs": peer["trial_epochs"], "first_trial": rec["best_trial"] if args.same_seed else 0,
                      "record_best": rec["best_value"]})
        for side in sides:
            v = side["values"]
            side.update(record=n, record_side=rec["side"], record_tag=rec.get("tag"), seed=seed, params=params,
                        pipeline=os.path.basename(args.pipeline), k=args.k, peer_jobs=args.peer_jobs, mean=statistics.fmean(v),
                        sd=statistics.stdev(v), min=min(v), max=max(v), load_before=l0,
                        load_after=measure.load(), stamp=stamp)
            log.write(json.dumps(side) + "\n")
            log.flush()
            rows.append(side)
            print(f"record {n} (seed {seed}) {side['side']:8} mean {side['mean']:.4f} sd {side['sd']:.4f} "
                  f"min {side['min']:.4f} max {side['max']:.4f}  wall {side['wall_s']:.1f}s  "
                  f"load {l0}->{side['load_after']}", flush=True)
    for s in ("pipe", "pytorch"):
        rs = [r for r in rows if r["side"] == s]
        if not rs:
            continue
        print(f"{s:8} mean of means {statistics.fmean(r['mean'] for r in rs):.4f}  "
              f"mean sd {statistics.fmean(r['sd'] for r in rs):.4f}")


if __name__ == "__main__":
    main()
