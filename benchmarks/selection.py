"""Does ``rg.select_estimator`` choose well, and what does its pilot cost?

For each problem:

1. **Pilots.** ``select_estimator`` runs with its defaults (every registered estimator that
   applies, with and without the variance reduction that applies; ``budget_s=10``; N = 16 samples
   per gradient; at most 200 gradients per candidate) from ``--pilots`` different keys. The first
   pilot compiles its candidates (cold); the later ones find them compiled (warm: what a
   re-selection in training costs).
2. **An independent long run.** Every candidate that applies (those the pilots measured and those
   the budget left out) is run again with another key: R = 1,000 gradients per candidate, the
   calls interleaved round robin (they are also the timing rounds), ``repgrad.diagnostics.compare``.
   Its variance × time per gradient ranks the candidates independently of the pilots.
3. **The check** (issue 19): each pilot's choice has a long-run variance × time within 1.25× of
   the best candidate's (the ratio, with its 95% bootstrap interval over replicates and rounds).
4. **The pilot's cost** as a multiple of one training step: the pilot's wall time over the
   chosen estimator's time per gradient in the long run (a training step is one gradient plus an
   optimizer update), cold (compiling included) and warm.

Problems: Gaussian costs where the score function, measure-valued, pathwise or pathwise with the
delta method wins; a step (no path derivative); a Bayesian logistic-regression likelihood; the
graduated-optimization Rastrigin of ``notebooks/estimator_selection.ipynb`` at wide and narrow
smoothing; Bernoulli and Categorical problems (small supports enumerate, large ones do not); and
an ``rg.stochastic`` graph whose two auto nodes want different estimators.

Usage: ``python benchmarks/selection.py [--small] [--problems "name;name"] [--pilots 5] [--json PATH]
[--results PATH]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import repgrad as rg
from repgrad import diagnostics as dg
from repgrad._src.selection.candidates import parse_candidates
from repgrad._src.selection.graph import is_objective
from repgrad._src.selection.select import _build

TARGET = 1.25
LEFT_OUT = ("not compiled", "too costly")  # excluded by the budget, not by the problem: still candidates

normal = lambda p: rg.Normal(p["loc"], p["scale"])
mvn = lambda p: rg.MultivariateNormalDiag(p["loc"], p["scale"])
bernoulli = lambda p: rg.Bernoulli(logits=p)
categorical = lambda p: rg.Categorical(logits=p)


def _scalar(loc, scale):
    return {"loc": jnp.float32(loc), "scale": jnp.float32(scale)}


def logistic_problem():
    a = jax.random.normal(jax.random.key(7), (200, 20)) / 4.0
    y = (jax.random.uniform(jax.random.key(8), (200,)) < 0.5).astype(jnp.float32)
    f = lambda w: jnp.sum(jax.nn.softplus(a @ w) - y * (a @ w))
    return f, mvn, {"loc": jnp.zeros(20), "scale": 0.5 * jnp.ones(20)}


def rastrigin_problem(sigma, mu):
    d, amp = 4, 10.0
    rotation = jnp.linalg.qr(jax.random.normal(jax.random.key(5), (d, d)))[0]

    def f(x):
        y = rotation @ x
        return jnp.sum(y**2 + amp * (1.0 - jnp.cos(2.0 * jnp.pi * y)))

    return f, mvn, {"loc": jnp.full(d, mu, jnp.float32), "scale": jnp.full(d, sigma, jnp.float32)}


def categorical_problem(d, k):
    c = jax.random.normal(jax.random.key(11), (d, k)) / 2.0

    def f(x):  # x: one category index per variable
        s = jnp.sum(jnp.take_along_axis(c, x[:, None], axis=1))
        return (s - 1.5) ** 2

    return f, categorical, jnp.zeros((d, k), jnp.float32)


def bernoulli_product():
    w = 0.3 * jnp.cos(jnp.arange(20, dtype=jnp.float32))
    return lambda b: jnp.exp(jnp.sum(w * b)), bernoulli, jnp.linspace(-1.5, 1.5, 20)


def graph_problem():
    def two_nodes(theta, key):  # node 0: cos(6 z), score wins; node 1: (z - 1)², pathwise wins
        k0, k1 = jax.random.split(key)
        z0 = rg.sample(k0, rg.Normal(theta[0], 0.5), estimator="auto")
        z1 = rg.sample(k1, rg.Normal(theta[1], 1.0), estimator="auto")
        rg.cost(jnp.cos(6.0 * z0))
        return (z1 - 1.0) ** 2

    return rg.stochastic(two_nodes, num_samples=16, baseline="loo"), None, jnp.array([0.3, 0.2], jnp.float32)


t200 = jnp.linspace(0.0, 1.0, 200)
PROBLEMS = {
    "cos(8x), N(0.3, 1)": lambda: (lambda x: jnp.cos(8.0 * x), normal, _scalar(0.3, 1.0)),
    "exp(-x^2), N(1, 1)": lambda: (lambda x: jnp.exp(-jnp.square(x)), normal, _scalar(1.0, 1.0)),
    "step 1(x > 0.5), N(0.3, 1)": lambda: (lambda x: jnp.where(x > 0.5, 1.0, 0.0), normal, _scalar(0.3, 1.0)),
    "quadratic, MVN 10-D": lambda: (lambda x: jnp.sum(jnp.square(x - 1.0)), mvn,
                                    {"loc": jnp.zeros(10), "scale": jnp.ones(10)}),
    "logistic NLL, MVN 20-D (200 points)": logistic_problem,
    "rotated Rastrigin 4-D, sigma = 1": lambda: rastrigin_problem(1.0, 2.5),
    "rotated Rastrigin 4-D, sigma = 0.05": lambda: rastrigin_problem(0.05, 0.3),
    "3 Bernoulli, non-separable": lambda: (lambda b: jnp.sin(3.0 * b[0] + 2.0 * b[1] * b[2]) + b[0] * b[2], bernoulli,
                                           jnp.array([0.3, -0.5, 0.8], jnp.float32)),
    "20 Bernoulli, exp(w.b)": bernoulli_product,
    "200 Bernoulli, quadratic": lambda: (lambda b: jnp.sum(jnp.square(b - t200)), bernoulli,
                                         jnp.linspace(-1.0, 1.0, 200)),
    "Categorical 3 x 4": lambda: categorical_problem(3, 4),
    "Categorical 10 x 10": lambda: categorical_problem(10, 10),
    "rg.stochastic graph, 2 auto nodes": graph_problem,
}
SMALL = ("cos(8x), N(0.3, 1)", "3 Bernoulli, non-separable", "rg.stochastic graph, 2 auto nodes")
SMALL_CANDIDATES = {"cos(8x), N(0.3, 1)": ["pathwise", "score:loo", "measure_valued"],
                    "3 Bernoulli, non-separable": ["enumeration", "disarm", "score:loo"]}


def _long_run_fns(f, dist, labels, num_samples):
    if is_objective(f):
        return {lb: jax.grad(f.with_estimators(tuple(lb.split(",")))) for lb in labels}
    return {lb: _build(f, dist, parse_candidates([lb])[0], num_samples, False, None) for lb in labels}


def run_problem(name, *, pilots, budget_s, long_replicates, pilot_replicates, candidates=None):
    f, dist, params = PROBLEMS[name]()
    graph = is_objective(f)
    call = (lambda key: rg.select_estimator(f, params, key, budget_s=budget_s, num_replicates=pilot_replicates,
                                            candidates=candidates)) if graph else (
        lambda key: rg.select_estimator(f, dist, params, key, budget_s=budget_s, num_replicates=pilot_replicates,
                                        candidates=candidates))
    runs = []
    for i in range(pilots):
        t0 = time.perf_counter()
        choice = call(jax.random.key(1000 + i))
        runs.append({"choice": choice.label, "wall_s": time.perf_counter() - t0, "pilot_s": choice.pilot_s,
                     "compile_s": choice.compile_s, "measured": list(choice.table.estimators),
                     "left_out": [lb for lb, why in choice.excluded if why.startswith(LEFT_OUT)],
                     "replicates": choice.table.summary[0].replicates})
        print(f"  pilot {i}: {choice.label:24s} {choice.pilot_s:6.2f} s (compiling {choice.compile_s:.2f} s), "
              f"{len(choice.table.estimators)} measured, {runs[-1]['replicates']} gradients each", flush=True)
    labels = list(dict.fromkeys(lb for r in runs for lb in r["measured"] + r["left_out"]))
    fns = _long_run_fns(f, dist, labels, 16)
    long = dg.compare(fns, params, jax.random.key(1), num_replicates=long_replicates, vectorize=False)
    by = {s.estimator: s for s in long.summary}
    best = next(s.estimator for s in long.summary if s.best)
    out = {"problem": name, "candidates": labels, "best": best, "pilots": runs,
           "long": {lb: {"variance": s.variance, "time_per_grad": s.time_per_grad, "var_x_time": s.var_x_time,
                         "ratio": s.ratio, "ratio_lo": s.ratio_lo, "ratio_hi": s.ratio_hi, "rounding": s.rounding}
                    for lb, s in by.items()}}
    for r in runs:
        s = by[r["choice"]]
        r.update(ratio=s.ratio, ratio_lo=s.ratio_lo, ratio_hi=s.ratio_hi, within=bool(s.ratio <= TARGET),
                 steps=r["pilot_s"] / s.time_per_grad)
    print(f"  long run ({long_replicates} gradients each): best {best}; choices "
          + ", ".join(f"{r['choice']} {r['ratio']:.2f}x" for r in runs), flush=True)
    return out


def table(results) -> str:
    lines = [
        "| problem | candidates | best in the long run | pilots' choices | choice / best, long run (95%) | within "
        f"{TARGET}× | cold pilot: s (compiling), training steps | warm pilot: s, training steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        runs = res["pilots"]
        choices = {}
        for r in runs:
            choices.setdefault(r["choice"], []).append(r)
        picked = "; ".join(f"{c} ×{len(rs)}" for c, rs in choices.items())
        ratios = "; ".join(f"{rs[0]['ratio']:.2f} [{rs[0]['ratio_lo']:.2f}, {rs[0]['ratio_hi']:.2f}]"
                           for rs in choices.values())
        within = sum(r["within"] for r in runs)
        cold, warm = runs[0], runs[1:]
        warm_s = np.median([r["pilot_s"] for r in warm]) if warm else math.nan
        warm_steps = np.median([r["steps"] for r in warm]) if warm else math.nan
        lines.append(f"| {res['problem']} | {len(res['candidates'])} | {res['best']} | {picked} | {ratios} | "
                     f"{within}/{len(runs)} | {cold['pilot_s']:.1f} ({cold['compile_s']:.1f}), {cold['steps']:.3g} | "
                     f"{warm_s:.2f}, {warm_steps:.3g} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--problems", default=None, help="problem names separated by ; (default: all)")
    parser.add_argument("--pilots", type=int, default=None, help="pilot keys per problem (default 5)")
    parser.add_argument("--budget", type=float, default=10.0, help="select_estimator's budget_s (default 10)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--results", default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    small = args.small or os.environ.get("REPGRAD_SMALL") == "1"
    names = args.problems.split(";") if args.problems else list(SMALL if small else PROBLEMS)
    pilots = args.pilots or (2 if small else 5)
    long_replicates, pilot_replicates = (100, 50) if small else (1000, 200)
    results = []
    start = time.perf_counter()
    for name in names:
        print(name, flush=True)
        results.append(run_problem(name, pilots=pilots, budget_s=args.budget, long_replicates=long_replicates,
                                   pilot_replicates=pilot_replicates,
                                   candidates=SMALL_CANDIDATES.get(name) if small else None))
    text = table(results)
    print("\n" + text)
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    meta = {"pilots": pilots, "budget_s": args.budget, "long_replicates": long_replicates,
            "pilot_replicates": pilot_replicates, "jax": jax.__version__, "python": sys.version.split()[0],
            "cpus": os.cpu_count(), "load": os.getloadavg(), "date": time.strftime("%Y-%m-%d")}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=1, default=float)
    if args.results:
        with open(args.results, "w") as fh:
            fh.write(text + "\n")
    return results


if __name__ == "__main__":
    main()
