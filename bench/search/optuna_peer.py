#!/usr/bin/python3
"""The Optuna peer of pipe's search stage: the same search, run by Optuna 3.1 and PyTorch 1.13.

It reads a pipe pipeline (pipelines/<name>-search.toml) and runs the search its `search` stage
describes, as pipe would, with Optuna's TPE sampler and median pruner in place of pipe's zoom
and ASHA:

  - the same data and split: datasets/data/<name>/<name>.csv and <name>.split.csv (the peers'
    split, train/val/test per row), test never read;
  - the same preprocessing as the pipeline's stages: impute (median / most frequent, with a
    missing indicator per numeric column that has missing cells in train) and one-hot encode
    when the data has categorical columns, log1p of the columns a `normalize` stage with
    method = "log1p" names, then standardise every column, all fitted on train;
  - the same model family: the base's dense layers (ReLU, He-normal weights, zero biases,
    dropout after the activation), a Glorot-uniform linear head (softmax for classes, one
    sigmoid logit for two, one output on the standardised target for regression); the loss is
    the mean cross-entropy (or MSE) plus l2 * (sum of the squares of every weight matrix), as
    pipe's `l2`; Adam/AdamW/SGD/RMSprop with pipe's defaults; input_noise as pipe's (Gaussian
    noise on the standardised inputs of every training batch);
  - the same budget: the base's epochs and early stopping (default: val_loss, patience 15,
    the best epoch's weights kept, its objective the trial's value), the stage's trials;
  - the same space: every parameter of the stage's `space` (uniform, log_uniform, int,
    log_int, choice, when) becomes an Optuna suggestion;
  - the same objective, reported to Optuna after every epoch (step = epoch, from 1). The
    median pruner starts judging at the epoch of the stage's prune.min_epochs, after 5
    completed trials (Optuna's default, and pipe's median min_trials).

Usage:
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/search/optuna_peer.py pipelines/digits-search.toml \
      [--seed 1] [--set tune.objective="val_accuracy"]... [--n-jobs 2] [--threads 1] [--out r.json]
      [--fix-5109] [--first-trial N]

--set takes pipe's form stage.key=value (the value in TOML) for the search stage and
pipeline.seed. --n-jobs trials run at once (Optuna threads), each on --threads torch threads.
It prints one JSON object: best_value, best_params, wall_s (the whole study), process_s,
total_epochs, trials, completed, pruned, values (each trial's value; null if pruned), and per
trial trial_params, trial_epochs (epochs run) and trial_last (the last reported value).
"""
import argparse, copy, json, math, os, sys, time, tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_set(s):
    key, sep, value = s.partition("=")
    if not sep:
        raise SystemExit(f"--set {s}: want stage.key=value")
    return key.strip().split("."), tomllib.loads("v = " + value)["v"]


def load_pipeline(path, sets):
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    for keys, value in sets:
        t = doc["pipeline"] if keys[0] == "pipeline" else doc["stages"][keys[0]]
        for k in keys[1:-1]:
            t = t.setdefault(k, {})
        t[keys[-1]] = value
    stages = doc["stages"]
    search = [(n, s) for n, s in stages.items() if s.get("kind") == "search"]
    data = [s for s in stages.values() if s.get("kind") == "dataset"]
    if len(search) != 1 or len(data) != 1:
        raise SystemExit(f"{path}: want one dataset stage and one search stage")
    return doc, search[0][1], data[0]


# ----------------------------------------------------------------------------- data
def log1p_columns(doc):
    """The columns a `normalize` stage with method = "log1p" transforms before standardising
    (credit_data's skewed amounts), so that the peer sees the pipeline's features."""
    cols = []
    for s in doc["stages"].values():
        if s.get("kind") == "normalize" and s.get("method") == "log1p":
            if "columns" not in s:
                raise SystemExit("a log1p normalize stage without columns: the peer needs them named")
            cols += list(s["columns"])
    return cols


def load_data(name, log1p=()):
    """Train and val features (standardised, float32) and targets, and the task. log1p: the
    numeric columns taken through log1p after imputation, as the pipeline's log1p stage."""
    import numpy as np, pandas as pd
    d = os.path.join(ROOT, "datasets", "data", name)
    meta = json.load(open(os.path.join(d, "meta.json")))
    df = pd.read_csv(os.path.join(d, meta["file"]))
    split = pd.read_csv(os.path.join(d, name + ".split.csv"))["split"].to_numpy()
    y = df.pop("target").to_numpy()
    tr, va = split == "train", split == "val"
    cats = meta["categorical"]
    nums = [c for c in df.columns if c not in cats]
    parts_tr, parts_va = [], []
    for c in nums:
        col = df[c].astype(float)
        a, b = col[tr], col[va]
        med = a.median()
        a_f, b_f = a.fillna(med).to_numpy(float), b.fillna(med).to_numpy(float)
        if c in log1p:
            a_f, b_f = np.log1p(a_f), np.log1p(b_f)
        parts_tr.append(a_f)
        parts_va.append(b_f)
        if a.isna().any():  # a missing indicator, as pipe's impute with indicator = true
            parts_tr.append(a.isna().to_numpy(float))
            parts_va.append(b.isna().to_numpy(float))
    for c in cats:
        a, b = df[c][tr].astype(object), df[c][va].astype(object)
        mode = a.mode(dropna=True).iloc[0]
        a, b = a.fillna(mode), b.fillna(mode)
        for level in sorted(a.unique()):
            parts_tr.append((a == level).to_numpy(float))
            parts_va.append((b == level).to_numpy(float))
    Xtr, Xva = np.column_stack(parts_tr), np.column_stack(parts_va)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd == 0] = 1
    Xtr, Xva = ((Xtr - mu) / sd).astype(np.float32), ((Xva - mu) / sd).astype(np.float32)
    if meta["task"] == "classification":
        classes, yi = np.unique(y[tr | va], return_inverse=True)
        ymap = {c: i for i, c in enumerate(classes)}
        ytr = np.array([ymap[v] for v in y[tr]]); yva = np.array([ymap[v] for v in y[va]])
        return Xtr, ytr, Xva, yva, ("binary" if len(classes) == 2 else "classes"), len(classes)
    y = y.astype(float)
    m, s = y[tr].mean(), y[tr].std()
    return Xtr, ((y[tr] - m) / s).astype(np.float32), Xva, ((y[va] - m) / s).astype(np.float32), "regression", 1


# ----------------------------------------------------------------------------- model
OPT_DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "sgd": 1e-2, "adagrad": 1e-2}


def set_path(cfg, path, value):
    """Sets a dotted path of pipe's base (layers.0.dense, layers.*.dropout, optimizer.lr)."""
    segs = path.split(".")
    t = cfg
    for i, s in enumerate(segs[:-1]):
        if s == "*":
            for layer in t:
                if "dense" in layer:
                    set_path(layer, ".".join(segs[i + 1:]), value)
            return
        if isinstance(t, list):
            t = t[int(s)]
        else:
            t = t.setdefault(s, {})
    last = segs[-1]
    if isinstance(t, list):
        t[int(last)] = value
    else:
        t[last] = value


def build(cfg, d_in, n_out, gen):
    import torch
    mods = []
    w = d_in
    act = cfg.get("activation", "relu")
    for layer in cfg.get("layers", [{"dense": 128}, {"dense": 64}]):
        extra = set(layer) - {"dense", "dropout"}
        if "dense" not in layer or extra:
            raise SystemExit(f"the peer builds dense layers with dropout only, not {layer}")
        lin = torch.nn.Linear(w, layer["dense"])
        with torch.no_grad():
            lin.weight.normal_(0, math.sqrt(2 / w), generator=gen)
            lin.bias.zero_()
        mods += [lin, {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "gelu": torch.nn.GELU}[act]()]
        if layer.get("dropout", 0) > 0:
            mods.append(torch.nn.Dropout(layer["dropout"]))
        w = layer["dense"]
    head = torch.nn.Linear(w, n_out)
    with torch.no_grad():
        lim = math.sqrt(6 / (w + n_out))
        head.weight.uniform_(-lim, lim, generator=gen)
        head.bias.zero_()
    mods.append(head)
    return torch.nn.Sequential(*mods)


def optimizer(cfg, params):
    import torch
    o = cfg.get("optimizer", {})
    name = o.get("name", "adam")
    lr = o.get("lr", OPT_DEFAULT_LR[name])
    wd = o.get("weight_decay", 0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(o.get("beta1", 0.9), o.get("beta2", 0.999)), weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd or 0.01)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=o.get("momentum", 0.0), nesterov=o.get("nesterov", False), weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=o.get("rho", 0.9), momentum=o.get("momentum", 0.0), weight_decay=wd)
    raise SystemExit(f"optimizer {name}: not in the peer")


def metrics(out, y, task):
    """pipe's val metrics: loss (no penalty), accuracy, logloss; or loss, rmse, mae, r2."""
    import torch
    if task == "regression":
        p = out.squeeze(1)
        mse = float(torch.mean((p - y) ** 2))
        var = float(torch.mean((y - y.mean()) ** 2))
        return {"val_loss": mse, "val_rmse": math.sqrt(mse), "val_mae": float(torch.mean(torch.abs(p - y))),
                "val_r2": 1 - mse / var}
    if task == "binary":
        z = out.squeeze(1)
        ll = float(torch.nn.functional.binary_cross_entropy_with_logits(z, y.float()))
        acc = float(((z > 0).long() == y).float().mean())
    else:
        ll = float(torch.nn.functional.cross_entropy(out, y))
        acc = float((out.argmax(1) == y).float().mean())
    return {"val_loss": ll, "val_logloss": ll, "val_accuracy": acc}


MAXIMIZE = ("val_accuracy", "val_r2")

# The train keys the peer trains with (input_noise: Gaussian noise of that standard deviation
# added to every standardised input of every training batch, as pipe's input_noise).
TRAIN_KEYS = ("layers", "optimizer", "epochs", "early_stopping", "batch_size", "l2", "activation", "input_noise")


# ----------------------------------------------------------------------------- search
def suggest(trial, space):
    """Draws the trial's parameters, in name order, conditions first where they name one."""
    params = {}
    names = sorted(space)
    pending = list(names)
    while pending:
        progressed = False
        for name in list(pending):
            p = space[name]
            when = p.get("when", {})
            if any(k in space and k in pending for k in when):
                continue
            pending.remove(name)
            progressed = True
            if any(k in space and params.get(k, object()) != v for k, v in when.items()):
                continue
            if "uniform" in p:
                params[name] = trial.suggest_float(name, *p["uniform"])
            elif "log_uniform" in p:
                params[name] = trial.suggest_float(name, *p["log_uniform"], log=True)
            elif "int" in p:
                params[name] = trial.suggest_int(name, *p["int"])
            elif "log_int" in p:
                params[name] = trial.suggest_int(name, *p["log_int"], log=True)
            elif "choice" in p:
                ch = p["choice"]
                if all(isinstance(c, (int, float, str, bool)) for c in ch):
                    params[name] = trial.suggest_categorical(name, ch)
                else:
                    params[name] = ch[trial.suggest_categorical(name, list(range(len(ch))))]
            else:
                raise SystemExit(f"space.{name}: no distribution the peer knows")
        if not progressed:
            raise SystemExit("space: conditions that form a cycle")
    return params


def trial_config(base, params):
    cfg = copy.deepcopy(base)
    # shortest paths first, layers.N.x after layers.*.x (pipe's order)
    for name in sorted(params, key=lambda n: (n.count("."), "*" not in n, n)):
        set_path(cfg, name, params[name])
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pipeline")
    ap.add_argument("--seed", type=int, default=None, help="the study's seed (default: the pipeline's seed)")
    ap.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE")
    ap.add_argument("--n-jobs", type=int, default=2, help="trials at once (Optuna threads)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--first-trial", type=int, default=0,
                    help="seed trial t's generator as trial first+t's (to train a search's trial again)")
    ap.add_argument("--fix-5109", action="store_true",
                    help="TPE with the truncated normal's log density divided by its width, as Optuna "
                         "fixed it (optuna/optuna#5109, #5110, November 2023) and as pipe's TPE has it")
    args = ap.parse_args()
    t_process = time.perf_counter()

    import numpy as np, optuna, torch
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.fix_5109:
        from optuna.samplers._tpe import _truncnorm, parzen_estimator
        raw = _truncnorm.logpdf

        def logpdf(x, a, b, loc=0, scale=1):
            return raw(x, a, b, loc, scale) - np.log(scale)

        _truncnorm.logpdf = logpdf
        assert parzen_estimator.truncnorm is _truncnorm
    doc, st, ds = load_pipeline(args.pipeline, [parse_set(s) for s in args.set])
    seed = args.seed if args.seed is not None else int(doc["pipeline"].get("seed", 0))
    base = st.get("base", {})
    for k in base:
        if k not in TRAIN_KEYS:
            raise SystemExit(f"base.{k}: the peer does not train with it")
    space = st["space"]
    trials = int(st.get("trials", 30))
    prune = st.get("prune", {})
    min_epochs = int(prune.get("min_epochs", 1))

    Xtr, ytr, Xva, yva, task, ncls = load_data(ds["name"], log1p_columns(doc))
    objective_key = st.get("objective", "auto")
    if objective_key == "auto":
        objective_key = "val_r2" if task == "regression" else "val_logloss"
    maximize = objective_key in MAXIMIZE
    Xt, Xv = torch.from_numpy(Xtr), torch.from_numpy(Xva)
    if task == "regression":
        Yt, Yv, n_out = torch.from_numpy(ytr).unsqueeze(1), torch.from_numpy(yva), 1
        lossf = torch.nn.MSELoss()
    elif task == "binary":
        Yt, Yv, n_out = torch.from_numpy(ytr).float().unsqueeze(1), torch.from_numpy(yva).long(), 1
        lossf = torch.nn.BCEWithLogitsLoss()
    else:
        Yt, Yv, n_out = torch.from_numpy(ytr).long(), torch.from_numpy(yva).long(), ncls
        lossf = torch.nn.CrossEntropyLoss()
    n = Xt.shape[0]
    epochs_run = []

    def objective(trial):
        params = suggest(trial, space)
        cfg = trial_config(base, params)
        for k in cfg:
            if k not in TRAIN_KEYS:
                raise SystemExit(f"{k}: the peer does not train with it")
        noise = float(cfg.get("input_noise", 0.0))
        gen = torch.Generator().manual_seed(seed * 100003 + args.first_trial + trial.number)
        net = build(cfg, Xt.shape[1], n_out, gen)
        opt = optimizer(cfg, net.parameters())
        l2 = float(cfg.get("l2", 0.0))
        weights = [m.weight for m in net if isinstance(m, torch.nn.Linear)]
        batch = int(cfg.get("batch_size", 64))
        es = cfg.get("early_stopping", {})
        es_on = es is not False and (not isinstance(es, dict) or es.get("enabled", True))
        es = es if isinstance(es, dict) else {}
        es_metric, patience = es.get("metric", "val_loss"), int(es.get("patience", 15))
        es_max = es_metric in MAXIMIZE
        best_es, best_value, since = None, None, 0
        ran = 0
        try:
            for epoch in range(1, int(cfg.get("epochs", 200)) + 1):
                net.train()
                perm = torch.randperm(n, generator=gen)
                for i in range(0, n, batch):
                    b = perm[i:i + batch]
                    opt.zero_grad()
                    xb = Xt[b]
                    if noise > 0:
                        xb = xb + noise * torch.randn(xb.shape, generator=gen)
                    loss = lossf(net(xb), Yt[b])
                    if l2:
                        loss = loss + l2 * sum((w * w).sum() for w in weights)
                    loss.backward()
                    opt.step()
                ran = epoch
                net.eval()
                with torch.no_grad():
                    m = metrics(net(Xv), Yv, task)
                e = m[es_metric]
                if best_es is None or (e > best_es if es_max else e < best_es):
                    best_es, best_value, since = e, m[objective_key], 0
                else:
                    since += 1
                trial.report(m[objective_key], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
                if es_on and since >= patience:
                    break
        finally:
            epochs_run.append(ran)
            trial.set_user_attr("epochs", ran)
        return best_value

    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min_epochs)
    study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=sampler, pruner=pruner)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=args.n_jobs)
    wall = time.perf_counter() - t0
    states = [t.state for t in study.trials]
    out = {
        "pipeline": os.path.basename(args.pipeline), "dataset": ds["name"], "seed": seed, "objective": objective_key,
        "best_value": study.best_value, "best_params": study.best_params, "best_trial": study.best_trial.number,
        "wall_s": wall, "process_s": time.perf_counter() - t_process, "total_epochs": sum(epochs_run),
        "trials": len(study.trials), "completed": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "values": [t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in study.trials],
        "trial_params": [t.params for t in study.trials],
        "trial_epochs": [t.user_attrs.get("epochs") for t in study.trials],
        "trial_last": [t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
                       for t in study.trials], "n_jobs": args.n_jobs, "torch_threads": args.threads,
        "fix_5109": args.fix_5109,
        "optuna": optuna.__version__, "torch": torch.__version__,
        "env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS") or k.startswith("OMP")},
    }
    s = json.dumps(out)
    print(s)
    if args.out:
        with open(args.out, "w") as f:
            f.write(s + "\n")


if __name__ == "__main__":
    main()
