#!/usr/bin/python3
"""The full ladder of `ladder-full-ref.toml` in PyTorch, to time a training step side by side
with pipe's (issue 17). It is a timing peer, not an accuracy one: it does the same work per
step, with the same shapes, and trains (its loss falls), but it is not checked to reproduce
pipe's numbers.

What one step does, as pipe's `semi = { method = "ladder", decoder = "full", separate_batches =
true, estimate_norm = "clean" }` on 784-1000-500-250-250-250-10 does it:

- encoder: every hidden layer linear -> batch norm without scale (a shift beta) -> N(0, 0.2)
  noise (the corrupted pass) -> relu; the head linear -> batch norm with scale -> N(0, 0.2);
  the inputs get N(0, 0.3) in the corrupted pass;
- the 100 labelled rows: one corrupted pass, normalised by their own batch, cross-entropy;
- the 100 unlabelled rows: a corrupted pass and a clean pass, each normalised by its own batch;
- the decoder, top-down: u(L) = BN(softmax(z~(L))), u(l) = BN(z^(l+1) V(l)); z^(l) =
  g(z~(l), u(l)) with the vanilla combinator's ten per-unit parameters; the cost
  sum_l lambda_l mean ||(z^(l) - mu(l)) / sigma(l) - z(l)||^2 with the clean pass's z, mu and
  sigma (weights 2000, 20, 0.1 x 5), backpropagated through both passes;
- Adam, lr 2e-3.

Usage: bench/semi/ladder_full_torch.py --steps 540 --threads 1
It prints one JSON line: steps, seconds, steps per second (after --warmup steps).
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

WIDTHS = [784, 1000, 500, 250, 250, 250, 10]
LAMBDAS = [2000.0, 20.0, 0.1, 0.1, 0.1, 0.1, 0.1]
EPS = 1e-5


def bn(x):
    """Batch statistics and the normalised x."""
    mu = x.mean(0, keepdim=True)
    var = x.var(0, unbiased=False, keepdim=True)
    return (x - mu) / torch.sqrt(var + EPS), mu, torch.sqrt(var + EPS)


class Ladder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        n = len(WIDTHS)
        self.lin = torch.nn.ModuleList([torch.nn.Linear(WIDTHS[i], WIDTHS[i + 1]) for i in range(n - 1)])
        self.beta = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(WIDTHS[i + 1])) for i in range(n - 1)])
        self.gamma_top = torch.nn.Parameter(torch.ones(WIDTHS[-1]))
        # the vanilla combinator's a1..a10 per unit, at every level (inputs first)
        init = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
        self.comb = torch.nn.ParameterList([torch.nn.Parameter(init[:, None].repeat(1, w).clone()) for w in WIDTHS])
        self.V = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(WIDTHS[l + 1], WIDTHS[l]) / WIDTHS[l + 1] ** 0.5) for l in range(n - 1)])

    def encoder(self, x, noise):
        """Returns the levels' normalised pre-activations (z, or z~ with noise), their batch
        means and sigmas, and the logits."""
        zs, mus, sds = [], [], []
        z0 = x + noise * 0.3 * torch.randn_like(x) if noise else x
        zs.append(z0)
        mus.append(torch.zeros(1, x.shape[1]))
        sds.append(torch.ones(1, x.shape[1]))
        h = z0
        L = len(self.lin)
        for i, lin in enumerate(self.lin):
            pre = lin(h)
            z, mu, sd = bn(pre)
            if noise:
                z = z + 0.2 * torch.randn_like(z)
            zs.append(z)
            mus.append(mu)
            sds.append(sd)
            if i < L - 1:
                h = F.relu(z + self.beta[i])
            else:
                h = self.gamma_top * (z + self.beta[i])
        return zs, mus, sds, h

    def g(self, l, zt, u):
        a = self.comb[l]
        mu = a[0] * torch.sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]
        v = a[5] * torch.sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]
        return (zt - mu) * v + mu

    def step_loss(self, xl, yl, xu):
        _, _, _, logits_l = self.encoder(xl, True)
        ce = F.cross_entropy(logits_l, yl)
        zt, _, _, logits_u = self.encoder(xu, True)
        zc, mu, sd, _ = self.encoder(xu, False)
        L = len(WIDTHS) - 1
        cost = 0.0
        zhat = None
        for l in range(L, -1, -1):
            if l == L:
                u, _, _ = bn(F.softmax(logits_u, 1))
            else:
                u, _, _ = bn(zhat @ self.V[l])
            zhat = self.g(l, zt[l], u)
            zbn = (zhat - mu[l]) / sd[l]
            cost = cost + LAMBDAS[l] * ((zbn - zc[l]) ** 2).mean()
        return ce + cost


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=540)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = Ladder()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    # Random stand-ins of MNIST's shapes (timing only): 900 labelled rows, 59,000 unlabelled.
    xl_all, yl_all = torch.rand(900, 784), torch.randint(0, 10, (900,))
    xu_all = torch.rand(59000, 784)
    losses = []
    t0 = None
    for s in range(args.warmup + args.steps):
        if s == args.warmup:
            t0 = time.perf_counter()
        i = (s * 100) % 900
        j = (s * 100) % 58900
        loss = net.step_loss(xl_all[i:i + 100], yl_all[i:i + 100], xu_all[j:j + 100])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    secs = time.perf_counter() - t0
    print(json.dumps({"peer": "torch", "torch": torch.__version__, "threads": args.threads, "steps": args.steps, "seconds": round(secs, 3),
                      "steps_per_s": round(args.steps / secs, 2), "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3)}))


if __name__ == "__main__":
    main()
