#!/usr/bin/python3
"""Markdown tables of bench/search/results.jsonl (what measure.py appended), for the README.

  summarize.py [--log bench/search/results.jsonl] [--tag TAG]...

Per mode: `runs` (test metric per pipeline and seed, and the medians), `versus` (pipe and
Optuna side by side per seed, with the ratio of the median walls), `prune` (the pipeline's
pruning against none: total epochs, best trial and objective). The last record of a
(mode, tag, pipeline, side, variant, seed) wins, so a rerun replaces an earlier one.
"""
import argparse, json, os, statistics

HERE = os.path.dirname(os.path.abspath(__file__))


def metric(ev):
    for k in ("test_accuracy", "test_r2"):
        if k in ev:
            return k, ev[k]
    return "-", float("nan")


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", default=os.path.join(HERE, "results.jsonl"))
    ap.add_argument("--tag", action="append", default=[])
    args = ap.parse_args()
    recs = {}
    for line in open(args.log):
        r = json.loads(line)
        if args.tag and r.get("tag") not in args.tag:
            continue
        recs[(r["mode"], r.get("tag"), r["pipeline"], r["side"], r.get("variant", ""), r["seed"])] = r
    recs = list(recs.values())

    runs = [r for r in recs if r["mode"] == "runs"]
    if runs:
        print("| pipeline | test metric | per seed (1, 2, 3) | median | best val objective (median) | wall s per seed | load before → after |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for pl in dict.fromkeys(r["pipeline"] for r in runs):
            rs = sorted((r for r in runs if r["pipeline"] == pl), key=lambda r: r["seed"])
            k = metric(rs[0]["eval"])[0]
            vals = [metric(r["eval"])[1] for r in rs]
            per_seed = " / ".join(format(v, ".4f") for v in vals)
            walls = " / ".join(format(r["wall_s"], ".1f") for r in rs)
            loads = " / ".join(r["load_before"] + "→" + r["load_after"] for r in rs)
            print(f"| {pl} | {k} | {per_seed} | {med(vals):.4f} | "
                  f"{rs[0]['objective']} {med([r['best_value'] for r in rs]):.4f} | {walls} | {loads} |")
        print()

    vs = [r for r in recs if r["mode"] == "versus"]
    if vs:
        print("| pipeline | seed | pipe best val | Optuna best val | pipe wall s | Optuna wall s | pipe epochs (pruned/trials) | Optuna epochs (pruned/trials) | load before (pipe, Optuna) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for pl in dict.fromkeys(r["pipeline"] for r in vs):
            for seed in sorted({r["seed"] for r in vs if r["pipeline"] == pl}):
                p = next((r for r in vs if r["pipeline"] == pl and r["seed"] == seed and r["side"] == "pipe"), None)
                o = next((r for r in vs if r["pipeline"] == pl and r["seed"] == seed and r["side"] == "optuna"), None)
                if not p or not o:
                    continue
                print(f"| {pl} | {seed} | {p['best_value']:.4f} | {o['best_value']:.4f} | {p['wall_s']:.1f} | {o['wall_s']:.1f} | "
                      f"{p['total_epochs']} ({p['pruned']}/{p['trials']}) | {o['total_epochs']} ({o['pruned']}/{o['trials']}) | "
                      f"{p['load_before']}, {o['load_before']} |")
            ps = [r for r in vs if r["pipeline"] == pl and r["side"] == "pipe"]
            os_ = [r for r in vs if r["pipeline"] == pl and r["side"] == "optuna"]
            pw, ow = med([r["wall_s"] for r in ps]), med([r["wall_s"] for r in os_])
            print(f"| **{pl} median** | | **{med([r['best_value'] for r in ps]):.4f}** | **{med([r['best_value'] for r in os_]):.4f}** | "
                  f"**{pw:.1f}** | **{ow:.1f}** (Optuna/pipe {ow / pw:.2f}×) | {med([r['total_epochs'] for r in ps]):.0f} | "
                  f"{med([r['total_epochs'] for r in os_]):.0f} | |")
        print()

    pr = [r for r in recs if r["mode"] == "prune"]
    if pr:
        print("| pipeline | seed | epochs with pruning | epochs without | saved | best trial (pruning / none) | best val (pruning / none) | test metric (pruning / none) | wall s (pruning / none) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for pl in dict.fromkeys(r["pipeline"] for r in pr):
            saved = []
            for seed in sorted({r["seed"] for r in pr if r["pipeline"] == pl}):
                a = next((r for r in pr if r["pipeline"] == pl and r["seed"] == seed and r["variant"] == "prune"), None)
                n = next((r for r in pr if r["pipeline"] == pl and r["seed"] == seed and r["variant"] == "none"), None)
                if not a or not n:
                    continue
                s = 1 - a["total_epochs"] / n["total_epochs"]
                saved.append(s)
                print(f"| {pl} | {seed} | {a['total_epochs']} | {n['total_epochs']} | {s:.0%} | {a['best_trial']} / {n['best_trial']} | "
                      f"{a['best_value']:.4f} / {n['best_value']:.4f} | {metric(a['eval'])[1]:.4f} / {metric(n['eval'])[1]:.4f} | "
                      f"{a['wall_s']:.1f} / {n['wall_s']:.1f} |")
            a = [r for r in pr if r["pipeline"] == pl and r["variant"] == "prune"]
            n = [r for r in pr if r["pipeline"] == pl and r["variant"] == "none"]
            print(f"| **{pl} median** | | **{med([r['total_epochs'] for r in a]):.0f}** | **{med([r['total_epochs'] for r in n]):.0f}** | "
                  f"**{med(saved):.0%}** | | **{med([r['best_value'] for r in a]):.4f} / {med([r['best_value'] for r in n]):.4f}** | "
                  f"{med([metric(r['eval'])[1] for r in a]):.4f} / {med([metric(r['eval'])[1] for r in n]):.4f} | "
                  f"{med([r['wall_s'] for r in a]):.1f} / {med([r['wall_s'] for r in n]):.1f} |")
        print()


if __name__ == "__main__":
    main()
