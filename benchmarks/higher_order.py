"""Cost of derivatives past the first: Hessian-vector products of ``rg.expectation`` against
the same HVP written by hand in JAX, and first-order gradients of the same surrogate (which
must cost what they did before the DiCE magic box).

Problem: f(x) = Σ_d cos(x_d) + x_d²/2, x ~ N(loc, diag(scale²)), params {"loc", "scale"} ∈ R^D.
Rows: the score function (the DiCE surrogate f̄ + (1/N) Σ w_n (⊡(log p_n) − 1), hand-written as
(1/N) Σ f_n exp(log p_n − ⊥log p_n)) and the pathwise estimator (hand-written as the mean of
f over reparameterized samples), each for the gradient and for the HVP jvp(grad) in a random
direction. Both sides use the same draws; the script checks they return the same numbers.

Timing: compile, warm up, then alternate repgrad/hand calls (ABAB…) and report
median(repgrad)/median(hand) with a 95% bootstrap interval over the paired rounds.

Usage::

    python benchmarks/higher_order.py            # N ∈ {100, 10000}, D ∈ {10, 1000}
    python benchmarks/higher_order.py --small    # tiny cells (smoke test)

Writes a markdown table to stdout and to ``benchmarks/out/higher_order.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import repgrad as rg

_sg = jax.lax.stop_gradient
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


def f(x):
    return jnp.sum(jnp.cos(x) + 0.5 * x * x)


def dist(p):
    return rg.Normal(p["loc"], p["scale"])


def _log_prob(x, p):
    z = (x - p["loc"][None]) / p["scale"][None]
    return jnp.sum(-0.5 * z * z - jnp.log(p["scale"])[None] - _LOG_SQRT_2PI, axis=-1)


def hand_loss(n, estimator):
    """The hand-written surrogate with the same draws as repgrad's (Normal: loc + scale·ε)."""

    def loss(p, key):
        eps = jax.random.normal(key, (n,) + p["loc"].shape, p["loc"].dtype)
        x = p["loc"][None] + p["scale"][None] * eps
        if estimator == "pathwise":
            return jnp.mean(jax.vmap(f)(x))
        x = _sg(x)
        lp = _log_prob(x, p)
        return jnp.mean(jax.vmap(f)(x) * jnp.exp(lp - _sg(lp)))

    return loss


def programs(n, estimator):
    loss = rg.expectation(f, dist, estimator, num_samples=n)
    hand = hand_loss(n, estimator)

    def hvp(fun):
        return lambda p, key, v: jax.jvp(lambda q: jax.grad(fun)(q, key), (p,), (v,))[1]

    return {
        "grad": (jax.jit(jax.grad(loss)), jax.jit(jax.grad(hand))),
        "hvp": (jax.jit(hvp(loss)), jax.jit(hvp(hand))),
    }


def _time(fn, args, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / inner


def compare(a, b, args, rounds, budget_s):
    jax.block_until_ready(a(*args))
    jax.block_until_ready(b(*args))
    once = max(_time(a, args, 1), 1e-6)
    inner = max(1, int(1e-3 / once))
    ta, tb, start = [], [], time.perf_counter()
    while len(ta) < rounds and time.perf_counter() - start < budget_s:
        ta.append(_time(a, args, inner))
        tb.append(_time(b, args, inner))
    ratio = statistics.median(ta) / statistics.median(tb)
    rng = np.random.default_rng(0)
    ta, tb = np.array(ta), np.array(tb)
    boots = []
    for _ in range(500):
        i = rng.integers(0, len(ta), len(ta))
        boots.append(np.median(ta[i]) / np.median(tb[i]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return ratio, lo, hi, statistics.median(tb), len(ta)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny cells, few rounds (smoke test)")
    parser.add_argument("--out", default=None, help="markdown output (default benchmarks/out/higher_order.md)")
    args = parser.parse_args(argv)
    cells = [(64, 4)] if args.small else [(100, 10), (100, 1000), (10000, 10), (10000, 1000)]
    rounds, budget = (15, 5.0) if args.small else (200, 30.0)
    rows = []
    for (n, d), estimator in [(c, e) for c in cells for e in ("score", "pathwise")]:
        params = {"loc": jnp.linspace(-1.0, 1.0, d), "scale": jnp.linspace(0.5, 2.0, d)}
        v = jax.tree_util.tree_map(lambda a: jnp.cos(3.0 * a), params)
        key = jax.random.key(0)
        for what, (mine, hand) in programs(n, estimator).items():
            call_args = (params, key, v) if what == "hvp" else (params, key)
            for x, y in zip(jax.tree_util.tree_leaves(mine(*call_args)), jax.tree_util.tree_leaves(hand(*call_args)), strict=True):
                np.testing.assert_allclose(x, y, rtol=2e-3, atol=2e-3 * float(jnp.max(jnp.abs(y))))
            ratio, lo, hi, t_hand, got = compare(mine, hand, call_args, rounds, budget)
            rows.append((estimator, what, n, d, ratio, lo, hi, t_hand * 1e3, got))
    header = "| estimator | derivative | N | D | repgrad / hand | 95% interval | hand ms | rounds |\n|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {e} | {w} | {n} | {d} | {r:.3f} | [{lo:.3f}, {hi:.3f}] | {t:.3f} | {k} |\n" for e, w, n, d, r, lo, hi, t, k in rows
    )
    meta = (
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
        f"{jax.devices()[0].platform}, {datetime.date.today()}\n"
    )
    table = header + body + meta
    print(table)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "out" / "higher_order.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    return rows


if __name__ == "__main__":
    main()
