"""Overhead of repgrad's transforms against the same estimator written by hand in JAX.

Problem: f(x) = Σ_d cos(x_d) + x_d²/2 with x ~ N(loc, diag(scale²)), x ∈ R^D, params
``{"loc": (D,), "scale": (D,)}``, N samples. Every repgrad transform is compared with
the plainest hand-written JAX computing the *same* estimator from the *same* random
draws (the script checks that both return the same gradient), both jit-compiled.

Timing: compile, warm up, then alternate repgrad/hand calls (ABAB…, so drift from other
processes on the machine hits both alike), each ``jax.block_until_ready``; the ratio is
the median over rounds of repgrad's time / hand's time in that round (load that drifts
slower than a round cancels in each round's ratio), with a 95% bootstrap interval over
the rounds and the ratio of the minima as a sanity check. Because timings on a shared machine are
noisy, the table also lists the N·D-sized ops that differ between the two optimized
HLO programs ("same" = XLA runs the same big computations for both).

Memory: XLA's compiled memory analysis (temporaries + arguments + outputs + generated
code), next to the floor N·D·4 bytes of one float32 copy of the samples. A cell whose
temporaries exceed ``JACOBIAN_FLAG`` × the floor, or the hand-written code's, is
flagged: that would hint at per-sample Jacobians (N × params) being materialized.

The measure-valued estimator costs 4·D evaluations of f per sample by design; cells
above ``MVD_MAX_F_ELEMS`` (N = 1000 and 100000 at D = 1000) are skipped and say so.

Calls shorter than a millisecond are timed in groups (``inner`` calls per timed sample,
enough for ≥ 1 ms), and rounds continue until the 95% interval of the ratio is within
``TARGET_HALFWIDTH`` of it (±5% with ``--small``, ±2% otherwise), or the cell's time budget or round cap is spent; each row
says which (``ci_ok``).

``--families``: ``score_grad`` of every built-in family with a ``log_prob`` against the
score-function estimator hand-written with the log-density as users write it (NumPy-style
``param[None]`` broadcasting, the normalizer at the parameter shape), same draws, at
N ∈ {256, 1024, 4096}, D = 100. It checks that each family's ``log_prob`` compiles to no more
N·D-sized work than the hand-written density.

Usage::

    python benchmarks/overhead.py              # full grid, N ∈ {10, 1000, 100000}, D ∈ {10, 1000}
    python benchmarks/overhead.py --small      # a few tiny cells (smoke test, seconds)
    python benchmarks/overhead.py --families   # score_grad per family vs hand-written log-densities

Writes a markdown table to stdout and to ``benchmarks/out/overhead.md``
(``overhead_families.md`` with ``--families``).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import math
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import repgrad as rg  # noqa: E402

_sg = jax.lax.stop_gradient
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
MVD_CHUNK = 64  # coordinates per lax.map step, as repgrad 0.1.0 did (the core now chunks by chunk_size)
JACOBIAN_FLAG = 10.0  # temp memory ≥ this × N·D·4 bytes (and ≥ 1 MB) is flagged
MVD_MAX_F_ELEMS = 2e9  # skip MVD cells needing more than this many x-elements of f work per call
TARGET_HALFWIDTH = {"small": 0.05, "full": 0.02}  # stop timing a cell once its 95% CI is within ± this
MIN_SAMPLE_S = 1e-3  # group calls shorter than this into one timed sample


# ------------------------------------------------------------------------ the problem


def f(x):
    return jnp.sum(jnp.cos(x) + 0.5 * x * x)


def dist(p):
    return rg.Normal(p["loc"], p["scale"])


def make_params(d):
    return {"loc": jnp.linspace(-1.0, 1.0, d, dtype=jnp.float32), "scale": jnp.full((d,), 0.7, jnp.float32)}


# ------------------------------------------------------------ hand-written baselines


def hand_pathwise(n):
    def loss(p, key):
        eps = jax.random.normal(key, (n,) + p["loc"].shape, p["loc"].dtype)
        return jnp.mean(jax.vmap(f)(p["loc"][None] + p["scale"][None] * eps))

    return jax.grad(loss)


def _normal_log_prob(x, loc, scale):
    z = (x - loc[None]) / scale[None]
    return jnp.sum(-0.5 * z * z - jnp.log(scale)[None] - _LOG_SQRT_2PI, axis=-1)


def hand_score(n, loo=False):
    def loss(p, key):
        eps = jax.random.normal(key, (n,) + p["loc"].shape, p["loc"].dtype)
        x = _sg(p["loc"][None] + p["scale"][None] * eps)
        fx = jax.vmap(f)(x)
        w = fx - (jnp.sum(fx) - fx) / (n - 1) if loo else fx
        return jnp.mean(_sg(w) * _normal_log_prob(x, p["loc"], p["scale"]))

    return jax.grad(loss)


def hand_mvd(n):
    """Coupled Normal MVD (Mohamed et al. 2020, §6), same draws as repgrad's."""

    def replace_each(x, x_new):
        d = x.shape[1]

        def at(i):
            mixed = jax.vmap(lambda xs, v: xs.at[i].set(v[i]))(x, x_new)
            return jax.vmap(f)(mixed)

        return jax.lax.map(at, jnp.arange(d), batch_size=min(d, MVD_CHUNK)).T  # (n, d)

    def grad(p, key):
        loc, scale = p["loc"][None], p["scale"][None]  # (1, D): explicit broadcasting
        shape, dtype = (n,) + p["loc"].shape, loc.dtype
        key_x, key_w = jax.random.split(key)
        x = loc + scale * jax.random.normal(key_x, shape, dtype)
        k_r, _, k_m, k_u = jax.random.split(key_w, 4)
        u = jax.random.uniform(k_r, shape, dtype, minval=jnp.finfo(dtype).tiny)
        r = jnp.sqrt(-2.0 * jnp.log(u))  # Rayleigh(1)
        k1, k2 = jax.random.split(k_m)
        m = jax.random.rademacher(k2, shape, dtype) * jnp.linalg.norm(
            jax.random.normal(k1, shape + (3,), dtype), axis=-1
        )
        z = m * jax.random.uniform(k_u, shape, dtype)  # Normal, coupled to the Maxwell draw
        g_loc = jnp.mean(replace_each(x, loc + scale * r) - replace_each(x, loc - scale * r), axis=0)
        g_scale = jnp.mean(replace_each(x, loc + scale * m) - replace_each(x, loc + scale * z), axis=0)
        scale = p["scale"]
        return {"loc": g_loc / (scale * math.sqrt(2.0 * math.pi)), "scale": g_scale / scale}

    return grad


# ------------------------------------------------- families: hand-written log-densities
# Each family: (params -> distribution, D -> params, hand-written log-density summed over the
# last axis). The densities are written as a user writes them: NumPy broadcasting of
# ``param[None]`` against the (N, D) samples, parameter-only terms at the parameter shape.

_gammaln, _betaln = jax.scipy.special.gammaln, jax.scipy.special.betaln


def _positive(d, lo=0.5, hi=2.0):
    return jnp.linspace(lo, hi, d, dtype=jnp.float32)


def _loc_scale(d):
    return {"loc": jnp.linspace(-1.0, 1.0, d, dtype=jnp.float32), "scale": _positive(d)}


def _hand_normal(x, p):
    z = (x - p["loc"][None]) / p["scale"][None]
    return jnp.sum(-0.5 * z * z - jnp.log(p["scale"])[None] - _LOG_SQRT_2PI, axis=-1)


def _hand_lognormal(x, p):
    lx = jnp.log(x)
    return _hand_normal(lx, p) - jnp.sum(lx, axis=-1)


def _hand_laplace(x, p):
    return jnp.sum(-jnp.abs(x - p["loc"][None]) / p["scale"][None] - jnp.log(2.0 * p["scale"])[None], axis=-1)


def _hand_logistic(x, p):
    z = (x - p["loc"][None]) / p["scale"][None]
    return jnp.sum(-z - 2.0 * jax.nn.softplus(-z) - jnp.log(p["scale"])[None], axis=-1)


def _hand_exponential(x, p):
    return jnp.sum(jnp.log(p["rate"])[None] - p["rate"][None] * x, axis=-1)


def _hand_gamma(x, p):
    a, b = p["concentration"], p["rate"]
    return jnp.sum((a - 1.0)[None] * jnp.log(x) - b[None] * x + (a * jnp.log(b) - _gammaln(a))[None], axis=-1)


def _hand_beta(x, p):
    a, b = p["concentration1"], p["concentration0"]
    return jnp.sum((a - 1.0)[None] * jnp.log(x) + (b - 1.0)[None] * jnp.log1p(-x) - _betaln(a, b)[None], axis=-1)


def _hand_poisson(x, p):
    return jnp.sum(x * jnp.log(p["rate"])[None] - p["rate"][None] - _gammaln(x + 1.0), axis=-1)


def _hand_bernoulli(x, p):
    logits = p["logits"][None]
    return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)


def _hand_dirichlet(x, p):
    c = p["concentration"]
    return jnp.sum((c - 1.0)[None] * jnp.log(x), axis=-1) - (jnp.sum(_gammaln(c)) - _gammaln(jnp.sum(c)))


FAMILIES = {
    "Normal": (lambda p: rg.Normal(p["loc"], p["scale"]), _loc_scale, _hand_normal),
    "MultivariateNormalDiag": (lambda p: rg.MultivariateNormalDiag(p["loc"], p["scale"]), _loc_scale, _hand_normal),
    "LogNormal": (lambda p: rg.LogNormal(p["loc"], p["scale"]), _loc_scale, _hand_lognormal),
    "Laplace": (lambda p: rg.Laplace(p["loc"], p["scale"]), _loc_scale, _hand_laplace),
    "Logistic": (lambda p: rg.Logistic(p["loc"], p["scale"]), _loc_scale, _hand_logistic),
    "Exponential": (lambda p: rg.Exponential(p["rate"]), lambda d: {"rate": _positive(d)}, _hand_exponential),
    "Gamma": (
        lambda p: rg.Gamma(p["concentration"], p["rate"]),
        lambda d: {"concentration": _positive(d, 1.5, 4.0), "rate": _positive(d)},
        _hand_gamma,
    ),
    "Beta": (
        lambda p: rg.Beta(p["concentration1"], p["concentration0"]),
        lambda d: {"concentration1": _positive(d, 1.5, 4.0), "concentration0": _positive(d, 4.0, 1.5)},
        _hand_beta,
    ),
    "Dirichlet": (
        lambda p: rg.Dirichlet(p["concentration"]),
        lambda d: {"concentration": _positive(d, 1.5, 4.0)},
        _hand_dirichlet,
    ),
    "Poisson": (lambda p: rg.Poisson(p["rate"]), lambda d: {"rate": _positive(d, 0.5, 5.0)}, _hand_poisson),
    "Bernoulli": (
        lambda p: rg.Bernoulli(logits=p["logits"]),
        lambda d: {"logits": jnp.linspace(-2.0, 2.0, d, dtype=jnp.float32)},
        _hand_bernoulli,
    ),
}


def hand_score_family(n, make_dist, hand_log_prob):
    """The score-function estimator, no baseline, with the hand-written log-density; the
    samples come from the family's own sampler (the same draws as repgrad's)."""

    def loss(p, key):
        x = _sg(make_dist(p).sample(key, (n,)))
        return jnp.mean(_sg(jax.vmap(f)(x)) * hand_log_prob(x, p))

    return jax.grad(loss)


# --------------------------------------------------------------------- the transforms


def cases(n):
    """(name, repgrad fn, hand fn, is MVD) for one N."""
    yield "pathwise_grad", rg.pathwise_grad(f, dist, num_samples=n), hand_pathwise(n), False
    yield (
        "grad(expectation pathwise)",
        jax.grad(rg.expectation(f, dist, estimator="pathwise", num_samples=n)),
        hand_pathwise(n),
        False,
    )
    yield "score_grad", rg.score_grad(f, dist, num_samples=n), hand_score(n), False
    yield (
        "score_grad loo",
        rg.score_grad(f, dist, num_samples=n, baseline="loo"),
        hand_score(n, loo=True),
        False,
    )
    yield (
        "grad(expectation score)",
        jax.grad(rg.expectation(f, dist, estimator="score", num_samples=n)),
        hand_score(n),
        False,
    )
    yield "measure_valued_grad", rg.measure_valued_grad(f, dist, num_samples=n), hand_mvd(n), True


# ------------------------------------------------------------------ timing and memory


def _time_once(fn, args, inner=1):
    t0 = time.perf_counter()
    for _ in range(inner):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / inner


def time_pair(fa, fb, args, *, min_reps, max_reps, budget_s, target, big_cell_s=30.0):
    """Alternates fa/fb calls; returns the two arrays of seconds per call and a summary dict.

    Calls faster than ``MIN_SAMPLE_S`` are timed ``inner`` at a time (one sample = their
    mean). Runs at least ``min_reps`` rounds (fewer, but ≥ 5, where that would take more
    than ``big_cell_s``), then more until the bootstrap 95% interval of the ratio is
    within ±``target`` of it, ``budget_s`` is spent or ``max_reps`` is reached.
    """
    warm = 0.0
    for _ in range(2):  # warm-up
        warm = _time_once(fa, args) + _time_once(fb, args)
    inner = max(1, min(100, math.ceil(2 * MIN_SAMPLE_S / max(warm, 1e-9))))
    min_reps = max(5, min(min_reps, int(big_cell_s / (warm * inner))))
    ta, tb = [], []
    start = time.perf_counter()
    halfwidth = math.inf
    while len(ta) < max_reps:
        if len(ta) % 2:  # ABAB… with the order flipped every other round
            tb.append(_time_once(fb, args, inner))
            ta.append(_time_once(fa, args, inner))
        else:
            ta.append(_time_once(fa, args, inner))
            tb.append(_time_once(fb, args, inner))
        if len(ta) >= min_reps and len(ta) % 10 == 0:
            lo, hi = bootstrap_ratio(np.array(ta), np.array(tb), reps=500)
            halfwidth = max(hi - (mid := paired_ratio(ta, tb)), mid - lo) / mid
            if halfwidth <= target or time.perf_counter() - start >= budget_s:
                break
    stop = "ci" if halfwidth <= target else ("reps" if len(ta) >= max_reps else "budget")
    return np.array(ta), np.array(tb), {"inner": inner, "stop": stop}


def paired_ratio(ta, tb):
    """Median over rounds of ta/tb: each round's two calls run back to back, so load that
    drifts on the scale of a round cancels in their ratio."""
    return float(np.median(np.asarray(ta) / np.asarray(tb)))


def bootstrap_ratio(ta, tb, reps=2000, seed=0):
    """95% interval of :func:`paired_ratio`, resampling the rounds."""
    r = np.asarray(ta) / np.asarray(tb)
    idx = np.random.default_rng(seed).integers(0, len(r), size=(reps, len(r)))
    return np.quantile(np.median(r[idx], axis=1), [0.025, 0.975])


def memory(compiled):
    """(peak bytes, temp bytes) from XLA's compiled memory analysis.

    Peak = temporaries + arguments + outputs + generated code − aliased bytes, an upper
    bound on what the executable holds at once. (The CPU backend's own
    ``peak_memory_in_bytes`` leaves out the temporaries, so it is not used.)
    """
    m = compiled.memory_analysis()
    if m is None:
        return float("nan"), float("nan")
    peak = (
        m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes
        + m.generated_code_size_in_bytes - m.alias_size_in_bytes
    )  # fmt: skip
    return peak, m.temp_size_in_bytes


_HLO_OP = re.compile(r"= (\w+\[[0-9,]*\])(?:\{[^}]*\})? ([a-z][\w-]*)\(")


def hlo_diff(compiled_a, compiled_b, big):
    """Ops on arrays of ≥ ``big`` elements in a's optimized HLO beyond b's, and vice versa.

    A noise-free view of the overhead: "same" means XLA runs the same N·D-sized
    computations for both, whatever the timings say; smaller ops are only counted.
    """
    ca = collections.Counter(_HLO_OP.findall(compiled_a.as_text()))
    cb = collections.Counter(_HLO_OP.findall(compiled_b.as_text()))
    skip = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast", "copy", "broadcast", "fusion"}

    def size(shape):
        dims = shape[shape.index("[") + 1 : -1]
        return math.prod(int(n) for n in dims.split(",")) if dims else 1

    parts, small = [], 0
    for sign, diff in (("+", ca - cb), ("−", cb - ca)):
        for (shape, op), k in sorted(diff.items()):
            if op in skip:
                continue
            if size(shape) >= big:
                parts.append(f"{sign}{k} {op} {shape}")
            else:
                small += k
    if small:
        parts.append(f"±{small} smaller ops")
    return ", ".join(parts) or "same"


def check_same(ga, gb, name):
    for k in ga:
        a, b = np.asarray(ga[k]), np.asarray(gb[k])
        scale = max(1.0, float(np.max(np.abs(b))))
        if not np.allclose(a, b, rtol=1e-3, atol=1e-3 * scale):
            raise AssertionError(f"{name}: repgrad and hand-written gradients differ for {k!r}")


# ------------------------------------------------------------------------------ main


def measure(name, n, d, params, fa, fb, *, min_reps, max_reps, budget_s, target):
    """One row: compile both, check equal gradients, time interleaved, memory and HLO diff."""
    key = jax.random.key(0)
    ca = jax.jit(fa).lower(params, key).compile()
    cb = jax.jit(fb).lower(params, key).compile()
    check_same(ca(params, key), cb(params, key), f"{name} N={n} D={d}")
    ta, tb, info = time_pair(
        ca, cb, (params, key), min_reps=min_reps, max_reps=max_reps, budget_s=budget_s, target=target
    )
    lo, hi = bootstrap_ratio(ta, tb)
    (peak_a, temp_a), (peak_b, temp_b) = memory(ca), memory(cb)
    hlo = hlo_diff(ca, cb, big=n * d)
    del ca, cb
    floor = n * d * 4
    ratio = paired_ratio(ta, tb)
    row = dict(
        name=name, n=n, d=d, reps=len(ta), inner=info["inner"], stop=info["stop"],
        ms_a=1e3 * statistics.median(ta), ms_b=1e3 * statistics.median(tb),
        ratio=ratio, lo=lo, hi=hi, ci_ok=bool(max(hi - ratio, ratio - lo) <= 0.10 * ratio),
        min_ratio=ta.min() / tb.min(),
        peak_a=peak_a, peak_b=peak_b, temp_a=temp_a, temp_b=temp_b, floor=floor,
        flag=temp_a >= JACOBIAN_FLAG * floor and temp_a >= 2**20,
        above_hand=temp_a > 1.05 * temp_b + 2**16, hlo=hlo,
    )  # fmt: skip
    print(_row(row), file=sys.stderr, flush=True)
    return row


def run(grid, *, only=None, **timing):
    rows = []
    for n, d in grid:
        params = make_params(d)
        for name, fa, fb, is_mvd in cases(n):
            if only and not any(o in name for o in only):
                continue
            if is_mvd and 4.0 * n * d * d > MVD_MAX_F_ELEMS:
                rows.append(
                    dict(name=name, n=n, d=d, skipped=f"skipped: 4·N·D = {4 * n * d:.0e} f-evals of size D")
                )
                continue
            rows.append(measure(name, n, d, params, fa, fb, **timing))
    return rows


def run_families(ns, d, *, only=None, **timing):
    rows = []
    for family, (make_dist, make_family_params, hand_log_prob) in FAMILIES.items():
        if only and not any(o in family for o in only):
            continue
        params = make_family_params(d)
        for n in ns:
            fa = rg.score_grad(f, make_dist, num_samples=n)
            fb = hand_score_family(n, make_dist, hand_log_prob)
            rows.append(measure(f"score_grad {family}", n, d, params, fa, fb, **timing))
    return rows


def _row(r):
    mb = 1 / 2**20
    if "skipped" in r:
        return f"| {r['name']} | {r['n']} | {r['d']} | — | — | — | — | — | — | — | {r['n'] * r['d'] * 4 * mb:.3g} | — | — | {r['skipped']} |"
    note = (
        f"temp {r['temp_a'] / r['floor']:.0f}× floor (hand {r['temp_b'] / r['floor']:.0f}×)"
        if r["flag"]
        else ""
    )
    if r["above_hand"]:
        note += f" temp above hand-written ({r['temp_a'] / 2**20:.3g} vs {r['temp_b'] / 2**20:.3g} MB)"
    return (
        f"| {r['name']} | {r['n']} | {r['d']} | {r['ms_a']:.3g} | {r['ms_b']:.3g} | {r['ratio']:.3f} "
        f"| [{r['lo']:.2f}, {r['hi']:.2f}] | {r['min_ratio']:.3f} | {r['peak_a'] * mb:.3g} | {r['peak_b'] * mb:.3g} "
        f"| {r['floor'] * mb:.3g} | {_runs(r)} | {r['hlo']} | {note} |"
    )


def _runs(r):
    """Timed rounds, × calls per timed sample when calls were grouped."""
    return f"{r['reps']}×{r['inner']}" if r.get("inner", 1) > 1 else f"{r['reps']}"


def table(rows):
    head = (
        "| transform | N | D | repgrad ms | hand ms | ratio | 95% CI | min ratio | peak MB repgrad "
        "| peak MB hand | N·D floor MB | runs | HLO ops repgrad vs hand | note |\n"
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|"
    )
    return "\n".join([head] + [_row(r) for r in rows])


def machine():
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
        f"{jax.devices()[0].platform} backend, jax {jax.__version__}, python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a few tiny cells (smoke test)")
    parser.add_argument("--only", nargs="*", help="run only transforms whose name contains one of these")
    parser.add_argument("--grid", nargs="*", help="cells as NxD, e.g. --grid 1000x10 100000x1000")
    parser.add_argument("--families", action="store_true", help="score_grad per family vs hand-written log-densities")
    parser.add_argument("--out", default=None, help="markdown output (default benchmarks/out/overhead[_families].md)")
    args = parser.parse_args(argv)
    out_default = Path(__file__).parent / "out" / ("overhead_families.md" if args.families else "overhead.md")
    args.out = args.out or str(out_default)
    small = dict(min_reps=30, max_reps=3000, budget_s=1.5, target=TARGET_HALFWIDTH["small"])
    full = dict(min_reps=21, max_reps=301, budget_s=3.0, target=TARGET_HALFWIDTH["full"])
    if args.families:
        ns, d = ((16,), 4) if args.small else ((256, 1024, 4096), 100)
        timing = dict(small, budget_s=0.3) if args.small else full
        rows = run_families(ns, d, only=args.only, **timing)
    elif args.small:
        timing = small
        rows = run([(8, 3)], only=args.only, **timing)
    else:
        grid = [(n, d) for n in (10, 1000, 100000) for d in (10, 1000)]
        if args.grid:
            grid = [tuple(int(v) for v in cell.split("x")) for cell in args.grid]
        timing = full
        rows = run(grid, only=args.only, **timing)
    text = (
        f"# repgrad overhead vs hand-written JAX\n\n{machine()}\n\n{table(rows)}\n\n"
        "ratio = median over rounds of repgrad/hand time (calls alternated); 95% CI by bootstrap over the rounds "
        "('runs' = rounds, × calls averaged per timed sample where a call takes under a millisecond); "
        f"rounds continue until the CI is within ±{timing['target']:.0%} of the ratio or the cell's budget is spent. "
        f"Peak memory from XLA's compiled memory analysis; the floor is one float32 copy of the N×D "
        f"samples. 'note' flags temporaries ≥ {JACOBIAN_FLAG:.0f}× the floor or above the hand-written code's. "
        "'HLO ops' lists the N·D-sized ops in repgrad's optimized HLO beyond (+) or missing from (−) the "
        "hand-written one's.\n"
    )
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return rows


if __name__ == "__main__":
    main()
