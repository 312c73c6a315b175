#!/usr/bin/python3
"""Where each side of a `measure.py versus` run spends its trials (bench/search/README.md).

  diagnose.py [--log results.jsonl] --tag TAG PIPELINE_BASENAME [--near 0.420,0.425]
  diagnose.py --rerun-pruned N --k K --run-dir DIR --pipe BIN PIPELINE
      The N pruned trials of pipe's run DIR that got furthest (most epochs, then best value),
      each trained again to the end as a fixed config with K seeds (measure.py's retrain),
      beside the run's best trial trained the same way: would ASHA have stopped a winner?

For each seed of the tagged versus records: the quantiles of the val objective of the
completed trials on each side, and per round (pipe's zoom rounds; Optuna's trials split in
thirds by number, the same sizes) the trials, completed, pruned, epochs, how many completed
trials reached each `near` level (a lower objective is better) and the epochs spent on them.
pipe's trials come from the run's trials.csv, Optuna's from the peer's per-trial record.
"""
import argparse, csv, glob, json, os, statistics

HERE = os.path.dirname(os.path.abspath(__file__))


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p * (len(xs) - 1)))] if xs else float("nan")


def pipe_trials(rec):
    """(round, status, value, epochs) per trial; value is the best so far for a pruned one."""
    paths = glob.glob(os.path.join(rec["run_dir"], "**", "trials.csv"), recursive=True)
    rows = sorted(csv.DictReader(open(paths[0])), key=lambda r: int(r["trial"]))
    return [(int(r["round"]), r["status"], float(r["objective"]) if r["objective"] else None,
             int(r["epochs_run"])) for r in rows]


def peer_trials(rec, sizes):
    out, i = [], 0
    for rd, n in enumerate(sizes):
        for _ in range(n):
            v = rec["values"][i]
            out.append((rd, "completed" if v is not None else "pruned", v if v is not None else rec["trial_last"][i],
                        rec["trial_epochs"][i] or 0))
            i += 1
    return out


def rerun_pruned(a):
    import sys, tempfile, tomllib
    sys.path.insert(0, HERE)
    import measure
    path = glob.glob(os.path.join(a.run_dir, "**", "trials.csv"), recursive=True)[0]
    rows = list(csv.DictReader(open(path)))
    fixed = {"trial", "round", "status", "epochs_run", "best_epoch", "objective", "seconds", "start_seconds", "error"}
    names = [c for c in rows[0] if c not in fixed and not c.startswith("cv_")]
    seed = a.seed

    def value(x):  # trials.csv writes numbers and lists as TOML, strings bare
        try:
            return tomllib.loads("v = " + x)["v"]
        except tomllib.TOMLDecodeError:
            return x

    def params(r):
        return {n: value(r[n]) for n in names if r[n] != ""}
    pruned = sorted((r for r in rows if r["status"] == "pruned"), key=lambda r: (-int(r["epochs_run"]), float(r["objective"])))
    best = min((r for r in rows if r["status"] == "completed"), key=lambda r: float(r["objective"]))
    tmp = tempfile.mkdtemp(prefix="pipe-rerun-")
    for label, r in [("best", best)] + [("pruned", r) for r in pruned[:a.rerun_pruned]]:
        vals, wall = measure.retrain(a.pipe, a.pipeline, seed, [], tmp, params(r), a.k)
        rec = {"what": label, "trial": int(r["trial"]), "round": int(r["round"]), "epochs_run": int(r["epochs_run"]),
                          "value_in_search": float(r["objective"]), "retrain_values": vals,
                          "retrain_mean": statistics.fmean(vals), "wall_s": wall}
        print(json.dumps(rec), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("--rerun-pruned", type=int, default=0)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--run-dir")
    ap.add_argument("--pipe")
    ap.add_argument("--seed", type=int, default=1, help="--rerun-pruned: the run seed of the retrains")
    ap.add_argument("--tag")
    ap.add_argument("--log", default=os.path.join(HERE, "results.jsonl"))
    ap.add_argument("--near", default="0.420,0.425")
    a = ap.parse_args()
    if a.rerun_pruned:
        return rerun_pruned(a)
    levels = [float(x) for x in a.near.split(",")]
    recs = [json.loads(l) for l in open(a.log)]
    recs = [r for r in recs if r.get("tag") == a.tag and r["pipeline"] == a.pipeline and r.get("mode") == "versus"]
    for r in sorted(recs, key=lambda r: (r["seed"], r["side"] != "pipe")):
        if r["side"] == "pipe":
            T = pipe_trials(r)
            sizes = [sum(1 for t in T if t[0] == k) for k in range(max(t[0] for t in T) + 1)]
        else:
            T = peer_trials(r, sizes)
        comp = [t[2] for t in T if t[1] == "completed"]
        print(f"{r['side']:6} seed {r['seed']}: best {min(comp):.4f}, completed {len(comp)}, objective of completed "
              f"q10/q25/median {q(comp, .1):.4f}/{q(comp, .25):.4f}/{q(comp, .5):.4f}, epochs {sum(t[3] for t in T)}"
              + (f", retrain mean {r['retrain_mean']:.4f} (K={r['retrain_k']})" if "retrain_mean" in r else ""))
        for rd in range(len(sizes)):
            tr = [t for t in T if t[0] == rd]
            c = [t for t in tr if t[1] == "completed"]
            near = "  ".join(f"≤{lv:.3f}: {sum(1 for t in c if t[2] <= lv)} ({sum(t[3] for t in c if t[2] <= lv)} ep)"
                             for lv in levels)
            print(f"    round {rd}: {len(tr)} trials, {len(c)} completed, {len(tr) - len(c)} pruned, "
                  f"{sum(t[3] for t in tr)} epochs, best {min((t[2] for t in c), default=float('nan')):.4f}, "
                  f"median completed {statistics.median([t[2] for t in c]) if c else float('nan'):.4f};  {near}")


if __name__ == "__main__":
    main()
