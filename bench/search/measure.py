#!/usr/bin/python3
"""Measurements of pipe's search pipelines (bench/search/README.md holds the results).

  measure.py runs PIPELINE... [--seeds 1,2,3] [--set stage.key=value]... [--dev]
      Runs each pipeline with each seed (--set pipeline.seed=N): test metric, best val
      objective, wall time, trials completed/pruned, epochs. --dev is the protocol the
      pipelines were designed with: 15% of train is held out as train_dev, every `apply` and
      the evaluate stage read train_dev in place of test, and test is never scored.
  measure.py versus PIPELINE [--seeds 1,2,3] [--set ...]
      pipe against the Optuna peer (optuna_peer.py) on the same search, interleaved seed by
      seed (pipe, Optuna, pipe, Optuna...): best val objective, wall time, epochs, pruned.
  measure.py versus PIPELINE --retrain K
      The same, then each side's chosen configuration (its best_params on the pipeline's base)
      is trained again by pipe as a fixed config with K seeds (a search of K trials whose space
      is one fixed value, rounds = 1, no pruning, the same run seed on both sides: paired
      seeds); the record's retrain_values, retrain_mean and retrain_median are those K val
      objectives. Best-of-N values reward a lucky draw; the retrain mean is the multi-seed
      criterion (bench/search/README.md, "Session 9"). --sides pipe runs pipe's side only (to
      compare a change of pipe's search with the Optuna records already in the log: the
      retrain seeds are the same, so the retrain values stay paired).
  measure.py prune PIPELINE [--seeds 1,2,3] [--set ...]
      The same search with the pipeline's pruning and with prune = { method = "none" },
      interleaved: total epochs run, the best trial and its val objective.

Every run appends a JSON line to --log (default bench/search/results.jsonl) with the load
average before and after it, and a table of medians is printed at the end. pipe is built
once with `go build` (the default, pure-Go build) unless --pipe names a binary; both sides
run with the same environment (OPENBLAS_NUM_THREADS=1 unless set; OPENBLAS_CORETYPE as the
machine sets it, quoted in the log).
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time, tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEER = os.path.join(HERE, "optuna_peer.py")


def load():
    return open("/proc/loadavg").read().split()[0]


def env():
    e = dict(os.environ)
    e.setdefault("OPENBLAS_NUM_THREADS", "1")
    return e


def build_pipe(tmp):
    out = os.path.join(tmp, "pipe")
    subprocess.run(["go", "build", "-o", out, "./cmd/pipe"], cwd=ROOT, check=True)
    return out


def search_stage(pipeline):
    with open(pipeline, "rb") as f:
        doc = tomllib.load(f)
    for name, st in doc["stages"].items():
        if st.get("kind") == "search":
            return doc, name, st
    raise SystemExit(f"{pipeline}: no search stage")


def dev_sets(pipeline):
    """The --set arguments of the dev protocol: train_dev held out and read in place of test."""
    doc, _, _ = search_stage(pipeline)
    sets = []
    for name, st in doc["stages"].items():
        if st.get("kind") == "split":
            sets.append(f"{name}.train_dev=0.15")
        for key in ("apply", "tables"):
            if key in st:
                refs = [r for r in st[key] if not r.endswith(".train_dev")]
                refs = [r[:-len(".test")] + ".train_dev" if r.endswith(".test") else r for r in refs]
                sets.append(f"{name}.{key}={json.dumps(refs)}")
    return sets


def cpu_children():
    """User + system CPU seconds of this process's finished children so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_pipe(pipe, pipeline, seed, sets, tmp):
    out = os.path.join(tmp, f"run-{time.monotonic_ns()}")
    args = [pipe, "run", pipeline, "--out", out, "--no-progress", "--no-cache", "--set", f"pipeline.seed={seed}"]
    for s in sets:
        args += ["--set", s]
    l0 = load()
    c0 = cpu_children()
    t0 = time.perf_counter()
    p = subprocess.run(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    cpu = cpu_children() - c0
    if p.returncode not in (0, 3):
        sys.stderr.write(p.stdout[-4000:])
        raise SystemExit(f"pipe run {pipeline} seed {seed}: exit {p.returncode}")
    m = json.load(open(os.path.join(out, "manifest.json")))
    name = next(n for n, s in m["stages"].items() if s["kind"] == "search")
    st = m["stages"][name]
    info = st["info"]
    ev = {}
    for n, s in m["stages"].items():
        if s["kind"] == "evaluate":
            ev.update(s["metrics"])
    rec = {"side": "pipe", "pipeline": os.path.basename(pipeline), "seed": seed, "sets": sets, "wall_s": wall,
           "cpu_s": cpu, "search_s": st["seconds"], "objective": info["objective"], "best_value": info["best_value"],
           "best_trial": info["best_trial"], "best_params": info["best_params"], "total_epochs": info["epochs_run"],
           "completed": info["trials"]["completed"], "pruned": info["trials"]["pruned"], "trials": info["trials"]["total"],
           "refit": "refit" in info, "eval": ev, "load_before": l0, "load_after": load(), "status": m["status"],
           "run_dir": out}
    # The best completed trial's own value, as Optuna's best_value is: with `confirm`, the
    # search's best_value is the confirmed choice's own value, which need not be the lowest.
    import csv, glob
    paths = glob.glob(os.path.join(out, "**", "trials.csv"), recursive=True)
    if len(paths) == 1:
        done = [float(r["objective"]) for r in csv.DictReader(open(paths[0])) if r["status"] == "completed"]
        if done:
            rec["trial_best"] = max(done) if info.get("maximize") else min(done)
    return rec


def run_peer(pipeline, seed, sets, tmp, n_jobs, threads, extra=()):
    args = ["/usr/bin/python3", PEER, pipeline, "--seed", str(seed), "--n-jobs", str(n_jobs), "--threads", str(threads)]
    args += list(extra)
    for s in sets:
        args += ["--set", s]
    l0 = load()
    t0 = time.perf_counter()
    p = subprocess.run(args, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"optuna_peer {pipeline} seed {seed}: exit {p.returncode}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r.update(side="optuna", sets=sets, process_wall_s=wall, search_s=r["wall_s"], wall_s=wall,
             load_before=l0, load_after=load())
    return r


def toml_value(v):
    """v as a TOML inline value (the --set form)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise SystemExit(f"retrain: cannot write {v!r} as TOML")


def fixed_config(pipeline, sets, params):
    """The search stage's base with params set on it (the peer's choice indices turned into
    values), as the peer builds a trial's config; returns (stage name, config)."""
    sys.path.insert(0, HERE)
    import optuna_peer
    doc, st, _ = optuna_peer.load_pipeline(pipeline, [optuna_peer.parse_set(s) for s in sets])
    name = next(n for n, s in doc["stages"].items() if s.get("kind") == "search")
    space = st["space"]
    params = dict(params)
    for k, v in params.items():
        ch = space.get(k, {}).get("choice")
        if ch and not all(isinstance(c, (int, float, str, bool)) for c in ch) and isinstance(v, int):
            params[k] = ch[v]
    return name, optuna_peer.trial_config(st.get("base", {}), params)


def retrain(pipe, pipeline, seed, sets, tmp, params, k):
    """Trains params (a side's chosen config) again with k seeds in pipe: a search of k trials
    over a one-value space, rounds = 1, no pruning; test is not scored (the evaluate stages
    read every table but test). Returns the k val objectives, in trial order, and the wall."""
    stage, cfg = fixed_config(pipeline, sets, params)
    epochs = int(cfg.get("epochs", 200))
    cfg.pop("epochs", None)
    doc, _, _ = search_stage(pipeline)
    no_test = [f"{n}.tables={json.dumps([t for t in st['tables'] if not t.endswith('.test')])}"
               for n, st in doc["stages"].items() if st.get("kind") == "evaluate" and "tables" in st]
    fixed = sets + no_test + [f"{stage}.base={toml_value(cfg)}",
                    f'{stage}.space={{ "epochs" = {{ choice = [{epochs}] }} }}',
                    f"{stage}.trials={k}", f"{stage}.rounds=1", f'{stage}.prune={{ method = "none" }}']
    # The retrain values are the trials' own runs; a confirmation (which cannot be turned off
    # by --set) is cut to its least, 2 trials with 1 more seed, to save time.
    if "confirm" in doc["stages"][stage] or any(x.startswith(f"{stage}.confirm=") for x in sets):
        fixed.append(f"{stage}.confirm={{ top = 2, seeds = 1 }}")
    r = run_pipe(pipe, pipeline, seed, fixed, tmp)
    vals = trials_values(r["run_dir"])
    if len(vals) != k or r["completed"] != k:
        raise SystemExit(f"retrain {pipeline} seed {seed}: {r['completed']} of {k} trials completed")
    return vals, r["wall_s"]


def trials_values(run_dir):
    """The objective of every trial in the run's trials.csv (the search stage's), trial order."""
    import csv, glob
    paths = glob.glob(os.path.join(run_dir, "**", "trials.csv"), recursive=True)
    if len(paths) != 1:
        raise SystemExit(f"{run_dir}: want one trials.csv, found {len(paths)}")
    rows = sorted(csv.DictReader(open(paths[0])), key=lambda r: int(r["trial"]))
    return [float(r["objective"]) for r in rows]


def main_metric(ev):
    """The test metric the issue's targets are stated in: accuracy, or R² for regression."""
    for k in ("test_accuracy", "test_r2", "train_dev_accuracy", "train_dev_r2"):
        if k in ev:
            return k, ev[k]
    return None, float("nan")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", help="runs, versus or prune")
    ap.add_argument("pipelines", nargs="+")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--dev", action="store_true")
    ap.add_argument("--pipe", help="a pipe binary (default: go build)")
    ap.add_argument("--n-jobs", type=int, default=2, help="the peer's concurrent trials")
    ap.add_argument("--peer-fix-5109", action="store_true",
                    help="the peer's TPE with Optuna's later fix of its log density (optuna_peer.py --fix-5109)")
    ap.add_argument("--threads", type=int, default=1, help="the peer's torch threads")
    ap.add_argument("--log", default=os.path.join(HERE, "results.jsonl"))
    ap.add_argument("--tag", default="", help="a label in the log")
    ap.add_argument("--retrain", type=int, default=0, metavar="K",
                    help="versus: train each side's chosen config again with K seeds (pipe)")
    ap.add_argument("--sides", default="pipe,optuna", help="versus: the sides to run (pipe, optuna or both)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    tmp = tempfile.mkdtemp(prefix="pipe-search-")
    pipe = args.pipe or build_pipe(tmp)
    log = open(args.log, "a")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"# {stamp} mode={args.mode} OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_NUM_THREADS={env()['OPENBLAS_NUM_THREADS']} load={load()} nproc={os.cpu_count()}", flush=True)

    def emit(rec):
        rec.update(mode=args.mode, tag=args.tag, stamp=stamp, openblas_coretype=os.environ.get("OPENBLAS_CORETYPE"))
        log.write(json.dumps(rec) + "\n")
        log.flush()
        k, v = main_metric(rec.get("eval", {}))
        print(f"{rec['side']:6} {rec['pipeline']:28} seed {rec['seed']} {rec.get('variant', ''):6} {rec['objective']} "
              f"{rec['best_value']:.4f}  {k or ''} {v:.4f}  wall {rec['wall_s']:.1f}s cpu {rec.get('cpu_s', float('nan')):.1f}s search {rec['search_s']:.1f}s  "
              f"epochs {rec['total_epochs']}  completed {rec['completed']} pruned {rec['pruned']}  "
              f"load {rec['load_before']}->{rec['load_after']}", flush=True)
        return rec

    recs = []
    for pipeline in args.pipelines:
        sets = list(args.set) + (dev_sets(pipeline) if args.dev else [])
        for seed in seeds:
            if args.mode == "runs":
                recs.append(emit(run_pipe(pipe, pipeline, seed, sets, tmp)))
            elif args.mode == "versus":
                want = args.sides.split(",")
                if not want or set(want) - {"pipe", "optuna"}:
                    raise SystemExit(f"--sides {args.sides}: want pipe, optuna or pipe,optuna")
                sides = []
                if "pipe" in want:
                    sides.append(run_pipe(pipe, pipeline, seed, sets, tmp))
                if "optuna" in want:
                    sides.append(run_peer(pipeline, seed, sets, tmp, args.n_jobs, args.threads,
                                          ["--fix-5109"] if args.peer_fix_5109 else []))
                for r in sides:
                    if args.retrain:
                        vals, wall = retrain(pipe, pipeline, seed, sets, tmp, r["best_params"], args.retrain)
                        r.update(retrain_k=args.retrain, retrain_values=vals, retrain_mean=statistics.fmean(vals),
                                 retrain_median=statistics.median(vals), retrain_wall_s=wall)
                        print(f"retrain {r['side']} seed {seed}: mean {r['retrain_mean']:.4f} median "
                              f"{r['retrain_median']:.4f} over {len(vals)} seeds", flush=True)
                    recs.append(emit(r))
            elif args.mode == "prune":
                _, stage, _ = search_stage(pipeline)
                for variant, extra in (("prune", []), ("none", [f'{stage}.prune={{ method = "none" }}'])):
                    r = run_pipe(pipe, pipeline, seed, sets + extra, tmp)
                    r["variant"] = variant
                    recs.append(emit(r))
            else:
                raise SystemExit(f"mode {args.mode}: want runs, versus or prune")

    print("\n# medians")
    groups = {}
    for r in recs:
        groups.setdefault((r["pipeline"], r["side"], r.get("variant", "")), []).append(r)
    for (pl, side, variant), rs in groups.items():
        k, _ = main_metric(rs[0].get("eval", {}))
        print(f"{pl:28} {side:6} {variant:6} n={len(rs)} best_val {med([r['best_value'] for r in rs]):.4f} "
              f"{k or '-'} {med([main_metric(r.get('eval', {}))[1] for r in rs]):.4f} "
              f"wall {med([r['wall_s'] for r in rs]):.1f}s search {med([r['search_s'] for r in rs]):.1f}s "
              f"epochs {med([r['total_epochs'] for r in rs]):.0f} pruned {med([r['pruned'] for r in rs]):.0f}/{rs[0]['trials']}")


if __name__ == "__main__":
    main()
