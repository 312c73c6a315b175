"""Optuna 3.1's TPE estimators for TestTPEAgainstOptuna (search/tpe_optuna_test.go).

Reads from stdin a JSON object of cases; for each, builds an Optuna study with the case's
trials (complete, pruned with one intermediate value at their last epoch, failed) and, for
each parameter, runs TPESampler().sample_independent: Optuna's own code counts the trials,
ranks and splits them and fits the two Parzen estimators, l (below) and g (above), which are
captured. Writes, per case and parameter, whether TPE had a model (False: too few trials, a
random draw), each estimator's components (weights; centres and widths on the sampling
axis, or each choice's probability) and its log density at the case's points.

The log densities are those of Optuna's mixtures with two of its later fixes, which pipe
follows:
  - optuna/optuna#5109 (fixed by #5110, November 2023): 3.1's _truncnorm.logpdf leaves out
    -log(scale), so each kernel's density is off by its width; here it is put back.
  - optuna/optuna#6258 (2025): 3.1 took a log integer's density at ln k while it samples
    the cell [ln(k-1/2), ln(k+1/2)]; here it takes the cell's mass, as an int's.
"raw_logl" and "raw_logg" are 3.1's own log_pdf, for the test's log.

Input:  {"cases": [{"maximize": bool, "space": [{"name", "dist", "lo", "hi", "choices"}],
         "trials": [{"state": "complete"|"pruned"|"failed", "params": {...}, "value": v,
         "epochs": e}], "points": {name: [values]}}]}   (a choice's points are indices)
Output: {"optuna": version, "cases": [{name: {"model": bool, "l": {...}, "g": {...},
         "logl": [...], "logg": [...], "raw_logl": [...], "raw_logg": [...]}}]}
"""
import json
import math
import sys

import numpy as np
import optuna
import optuna.samplers._tpe.sampler as tpe
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.trial import TrialState, create_trial


def distribution(p):
    d = p["dist"]
    if d == "uniform":
        return FloatDistribution(p["lo"], p["hi"])
    if d == "log_uniform":
        return FloatDistribution(p["lo"], p["hi"], log=True)
    if d == "int":
        return IntDistribution(int(p["lo"]), int(p["hi"]))
    if d == "log_int":
        return IntDistribution(int(p["lo"]), int(p["hi"]), log=True)
    if d == "choice":
        return CategoricalDistribution(p["choices"])
    raise SystemExit(f"unknown distribution {d}")


def components(z, name, dist):
    """An estimator's weights, and its kernels: centres and widths on the sampling axis, or
    each choice's probability under the mixture."""
    out = {"w": z._weights.tolist()}
    if isinstance(dist, CategoricalDistribution):
        out["probs"] = (z._weights @ z._categorical_weights[name]).tolist()
    else:
        out["mu"], out["sd"] = z._mus[name].tolist(), z._sigmas[name].tolist()
    return out


def log_density(z, name, dist, pts):
    """log of the estimator's mixture at pts: a choice's probability; an integer's cell mass
    ([k-1/2, k+1/2], on the log axis for log=True, inside the axis interval); a float's
    truncated normal density on its axis, -log(scale) included."""
    if isinstance(dist, CategoricalDistribution):
        return np.log((z._weights @ z._categorical_weights[name])[pts.astype(int)])
    low, high = z._low[name], z._high[name]
    mus, sigmas = z._mus[name], z._sigmas[name]
    accept = _truncnorm._log_gauss_mass((low - mus) / sigmas, (high - mus) / sigmas)
    if isinstance(dist, IntDistribution):
        a, b = pts - 0.5, pts + 0.5
        if dist.log:
            a, b = np.log(a), np.log(b)
        a, b = np.maximum(a, low), np.minimum(b, high)
        comp = _truncnorm._log_gauss_mass((a[:, None] - mus) / sigmas, (b[:, None] - mus) / sigmas) - accept
    else:
        x = np.log(pts) if dist.log else pts
        d = (x[:, None] - mus) / sigmas
        comp = -0.5 * d * d - 0.5 * math.log(2 * math.pi) - np.log(sigmas) - accept
    t = comp + np.log(z._weights)
    m = t.max(axis=1)
    return np.log(np.exp(t - m[:, None]).sum(axis=1)) + m


def run(case):
    dists = {p["name"]: distribution(p) for p in case["space"]}
    trials = []
    for t in case["trials"]:
        params = t["params"]
        kw = dict(params=params, distributions={k: dists[k] for k in params})
        if t["state"] == "complete":
            trials.append(create_trial(state=TrialState.COMPLETE, value=t["value"], **kw))
        elif t["state"] == "pruned":
            trials.append(create_trial(state=TrialState.PRUNED, intermediate_values={t["epochs"]: t["value"]}, **kw))
        else:
            trials.append(create_trial(state=TrialState.FAIL, **kw))
    sampler = tpe.TPESampler()  # Optuna's defaults, as pipe's TPEConfig zero value
    study = optuna.create_study(direction="maximize" if case["maximize"] else "minimize", sampler=sampler)
    study.add_trials(trials)
    frozen = study.trials[-1]
    made = []
    original = tpe._ParzenEstimator

    class Captured(original):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    out = {}
    tpe._ParzenEstimator = Captured
    try:
        for name, dist in dists.items():
            made.clear()
            sampler.sample_independent(study, frozen, name, dist)
            if not made:
                out[name] = {"model": False}
                continue
            below, above = made
            pts = np.asarray(case["points"][name], dtype=float)
            internal = pts.astype(int) if isinstance(dist, CategoricalDistribution) else pts
            out[name] = {"model": True, "l": components(below, name, dist), "g": components(above, name, dist),
                         "logl": log_density(below, name, dist, pts).tolist(),
                         "logg": log_density(above, name, dist, pts).tolist(),
                         "raw_logl": below.log_pdf({name: internal}).tolist(),
                         "raw_logg": above.log_pdf({name: internal}).tolist()}
    finally:
        tpe._ParzenEstimator = original
    return out


def main():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    doc = json.load(sys.stdin)
    json.dump({"optuna": optuna.__version__, "cases": [run(c) for c in doc["cases"]]}, sys.stdout)


if __name__ == "__main__":
    main()
