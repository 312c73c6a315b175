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
    return rec


def run_peer(pipeline, seed, sets, tmp, n_jobs, threads):
    args = ["/usr/bin/python3", PEER, pipeline, "--seed", str(seed), "--n-jobs", str(n_jobs), "--threads", str(threads)]
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
    ap.add_argument("--threads", type=int, default=1, help="the peer's torch threads")
    ap.add_argument("--log", default=os.path.join(HERE, "results.jsonl"))
    ap.add_argument("--tag", default="", help="a label in the log")
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
                recs.append(emit(run_pipe(pipe, pipeline, seed, sets, tmp)))
                recs.append(emit(run_peer(pipeline, seed, sets, tmp, args.n_jobs, args.threads)))
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
