#!/usr/bin/env python3
"""PyTorch peer for pipe's conv benchmarks (nn/bench_conv_test.go, BenchmarkConvPeer*).

One thread. Each step is forward + cross-entropy + backward + SGD update on a batch of 64 random
images, the same work as pipe's TrainStep + optim.Step. Prints one line per case:

    case=<name> samples_per_s=<median over reps> samples_per_cpu_s=<median> reps=<n>

samples_per_cpu_s divides by the process's CPU time instead of the wall clock: on a loaded
machine it is the steadier figure.

Cases (the same networks as the Go benchmarks):
  cnn       conv 32 3x3 same relu -> conv 64 3x3 same relu -> max_pool 2 -> flatten
            -> dense 128 relu -> dense 10, on 1x28x28
  conv1x1   conv 32 1x1 (64 channels in) relu on 64x14x14 -> global avg pool -> dense 10
  residual  residual block y = x + conv_b(relu(conv_a(x))), 32 channels 3x3 same, on 32x14x14
            -> global avg pool -> dense 10
Usage: torch_conv.py [case ...] [--reps N] [--steps N]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn

BATCH = 64


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


def build(name):
    if name == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * 14 * 14, 128), nn.ReLU(),
            nn.Linear(128, 10))
        shape = (1, 28, 28)
    elif name == "conv1x1":
        net = nn.Sequential(
            nn.Conv2d(64, 32, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        shape = (64, 14, 14)
    elif name == "residual":
        net = nn.Sequential(Residual(32), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        shape = (32, 14, 14)
    else:
        raise SystemExit(f"unknown case {name!r}: want cnn, conv1x1 or residual")
    return net, shape


def run(name, reps, steps):
    torch.manual_seed(1)
    net, shape = build(name)
    x = torch.rand(BATCH, *shape)
    y = torch.randint(0, 10, (BATCH,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    for _ in range(5):  # warm-up
        step()
    rates, cpu_rates = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        rates.append(steps * BATCH / (time.perf_counter() - t0))
        cpu_rates.append(steps * BATCH / (time.process_time() - c0))
    print(f"case={name} samples_per_s={statistics.median(rates):.1f} "
          f"samples_per_cpu_s={statistics.median(cpu_rates):.1f} reps={reps}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=["cnn", "conv1x1", "residual"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(1)
    for c in a.cases:
        run(c, a.reps, a.steps)


if __name__ == "__main__":
    main()
