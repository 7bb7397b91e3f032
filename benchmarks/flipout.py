"""Flipout versus a shared weight sample, local reparameterization and explicit
per-example weights: (a) gradient variance against batch size, (b) cost.

(a) Variance. A frozen Bayesian MLP 64 → 32 (tanh) → 10 on scikit-learn's digits
(standardized), posterior means LeCun-normal, every posterior std 0.1. For each batch
size N ∈ {1, 2, 4, …, 8192} and estimator, R replicates each draw an i.i.d. minibatch of
N training examples (computed as a zero-weighted padding of a larger batch, so that one
compile serves several N) and fresh weight noise, and compute the gradient of the mean
cross-entropy with respect to all posterior parameters (means and softplus
pre-images). Reported: the total variance Σ_j Var(ĝ_j) with its standard error (from the
per-replicate squared deviations), as in Wen et al. (2018), Fig. 1. Because examples are
exchangeable, Var = a + b/N for every estimator; a is the covariance that shared noise
induces between examples: large for a shared sample, ~0 for Flipout, exactly 0 for local
reparameterization and independent per-example weights.

(b) Cost. One dense layer d → d (d = 256 and 512), loss Σ y², ``jax.grad`` w.r.t. the
layer's params, jitted, at B ∈ {128, 512, 2048}; median wall time over interleaved
repetitions (round robin over the estimators and the order reversed every round, so
background load hits all alike) after compilation and warm-up, ratios to the
shared-sample layer from the same run. Memory: XLA's compiled memory analysis, temp +
argument + output bytes. Next to repgrad's layers, a hand-written Flipout layer with one
uniform draw per sign (``jax.random.rademacher``, repgrad 0.1.0's formulation), so the
effect of drawing 32 signs per random word is measured in the same run.

(c) Compiled program. From the optimized HLO of each cost cell: the number of matmuls
and the number of threefry hashes (elements of the random-bit loops), the deterministic
part of the cost.

Usage::

    python benchmarks/flipout.py              # full run (~12 min on 2 cores)
    python benchmarks/flipout.py --cost-only  # (b) and (c) only (~3 min)
    python benchmarks/flipout.py --small      # seconds (smoke test)

Writes ``benchmarks/out/flipout.md`` and the plot ``benchmarks/flipout_variance.png``
(``benchmarks/out/flipout_variance_small.png`` with ``--small``).
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from repgrad import nn  # noqa: E402

HIDDEN = 32
POSTERIOR_STD = 0.1
MAX_EXPLICIT_BYTES = 6e9  # skip running explicit per-example weights above this compiled footprint


def explicit_per_example(params, x, key):
    """Reference: an independent weight sample for every example (B × d_in × d_out floats)."""
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda xn, k: nn.dense_reparameterization(params, xn, k))(x, keys)


def flipout_uniform_per_sign(params, x, key):
    """Hand-written Flipout as repgrad 0.1.0 drew its signs: one uniform draw per sign
    (``jax.random.rademacher`` over (B, d_in + d_out)); one normal draw for ΔŴ and Δb."""
    k_eps, k_signs = jax.random.split(key)
    d_in, d_out = params.kernel_loc.shape
    eps = jax.random.normal(k_eps, (d_in * d_out + d_out,), x.dtype)
    eps_w, eps_b = eps[: d_in * d_out].reshape(d_in, d_out), eps[d_in * d_out :]
    signs = jax.random.rademacher(k_signs, (x.shape[0], d_in + d_out), x.dtype)
    s, r = signs[:, :d_in], signs[:, d_in:]
    mean = x @ params.kernel_loc + params.bias_loc[None]
    return mean + ((x * s) @ (params.kernel_scale * eps_w) + (params.bias_scale * eps_b)[None]) * r


ESTIMATORS = {
    "shared sample": nn.dense_reparameterization,
    "flipout": nn.dense_flipout,
    "local reparameterization": nn.dense_local_reparameterization,
    "independent per-example": explicit_per_example,
}
COST_ONLY = {"flipout, one uniform per sign (0.1.0)": flipout_uniform_per_sign}


# ------------------------------------------------------------------ (a) variance vs N


def load_data():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data - d.data.mean(0)) / (d.data.std(0) + 1.0)
    return jnp.asarray(x, jnp.float32), jnp.asarray(d.target, jnp.int32)


def frozen_mlp():
    k1, k2 = jax.random.split(jax.random.key(0))
    return (
        nn.init_dense(k1, 64, HIDDEN, init_scale=POSTERIOR_STD),
        nn.init_dense(k2, HIDDEN, 10, init_scale=POSTERIOR_STD),
    )


def replicated_grads_fn(layer, n_max, x, y, params, chunk):
    """Compiled ``(keys, weights) -> (R, P)`` flattened gradients for batches of ≤ n_max.

    Each replicate draws n_max i.i.d. examples; ``weights`` is 1/N on the first N and 0
    on the rest, so the gradient has exactly the law of an i.i.d. batch of N (the other
    examples' noise never reaches it) and one compile serves a whole group of N."""

    def loss(ps, k, x, y, idx, weights):
        k1, k2 = jax.random.split(k)
        h = jnp.tanh(layer(ps[0], x[idx], k1))
        logp = jax.nn.log_softmax(layer(ps[1], h, k2))
        return -jnp.sum(weights * jnp.take_along_axis(logp, y[idx][:, None], axis=1)[:, 0])

    def one(k, weights, x, y):
        k_data, k_w = jax.random.split(k)
        idx = jax.random.randint(k_data, (n_max,), 0, x.shape[0])
        g = jax.grad(loss)(params, k_w, x, y, idx, weights)
        return jnp.concatenate([jnp.ravel(a) for a in jax.tree_util.tree_leaves(g)])

    # data passed as arguments, not closed over: large constants slow XLA's compile down
    run = jax.jit(lambda ks, w, x, y: jax.lax.map(lambda k: one(k, w, x, y), ks, batch_size=chunk))
    return lambda ks, w: run(ks, w, x, y)


def total_variance(g):
    r = g.shape[0]
    z = np.sum((g - g.mean(0)) ** 2, axis=1) * r / (r - 1)
    return z.mean(), z.std(ddof=1) / math.sqrt(r)


def variance_study(ns, groups, replicates, explicit_replicates, examples_per_chunk, names=tuple(ESTIMATORS)):
    x, y = load_data()
    params = frozen_mlp()
    out = {}
    for e, (name, layer) in enumerate(ESTIMATORS.items()):
        if name not in names:
            continue
        reps = explicit_replicates if name == "independent per-example" else replicates
        rows = []
        t0 = time.perf_counter()
        for n_max in groups:
            chunk = max(1, min(reps, examples_per_chunk // n_max))
            fn = replicated_grads_fn(layer, n_max, x, y, params, chunk)
            for n in [n for n in ns if n <= n_max and (n_max == groups[0] or n > groups[groups.index(n_max) - 1])]:
                w = jnp.where(jnp.arange(n_max) < n, 1.0 / n, 0.0)
                g = np.asarray(fn(jax.random.split(jax.random.key(1000 * e + n), reps), w), np.float64)
                rows.append((n, *total_variance(g)))
        out[name] = (reps, rows)
        print(f"  variance: {name} done in {time.perf_counter() - t0:.1f}s", flush=True)
    return out


def fit_a_b(rows):
    n, v, se = (np.asarray(c, np.float64) for c in zip(*rows, strict=True))
    a_mat = np.stack([np.ones_like(n), 1 / n], axis=1) / se[:, None]
    (a, b), *_ = np.linalg.lstsq(a_mat, v / se, rcond=None)
    return a, b


def plot_variance(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {"shared sample": "o-", "flipout": "s-", "local reparameterization": "^-", "independent per-example": "x--"}
    for name, (_, rows) in results.items():
        n, v, se = (np.asarray(c) for c in zip(*rows, strict=True))
        ax.errorbar(n, v, yerr=2 * se, fmt=styles[name], ms=4, capsize=2, label=name)
    n0, v0 = results["flipout"][1][0][0], results["flipout"][1][0][1]
    ns = np.asarray([r[0] for r in results["flipout"][1]], np.float64)
    ax.plot(ns, v0 * n0 / ns, "k:", lw=1, label="∝ 1/N")
    ax.set(xscale="log", yscale="log", xlabel="batch size N", ylabel="total gradient variance",
           title=f"Bayesian MLP 64-{HIDDEN}-10 on digits (posterior std {POSTERIOR_STD})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


# ------------------------------------------------------------------------ (b) cost


def memory_bytes(compiled):
    m = compiled.memory_analysis()
    if m is None:
        return float("nan")
    return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes


_WHILE_U32 = re.compile(r"= \((?:[^()]*?)u32\[([0-9,]+)\]")


def hlo_summary(compiled):
    """Deterministic cost indicators from the optimized HLO: matmuls and threefry hashes."""
    text = compiled.as_text()
    entry = text[text.index("ENTRY"):] if "ENTRY" in text else text
    matmuls = sum(1 for line in entry.splitlines() if " dot(" in line or "gemm" in line or "dot_general" in line)
    hashes = 0
    for line in text.splitlines():
        if " while(" in line and (m := _WHILE_U32.search(line)):
            hashes += math.prod(int(v) for v in m.group(1).split(","))
    return {"matmuls": matmuls, "hashes": hashes}


def ratio_ci(ta, tb, reps=2000, seed=0):
    """95% bootstrap interval of median(ta)/median(tb) over paired rounds."""
    ta, tb = np.asarray(ta), np.asarray(tb)
    idx = np.random.default_rng(seed).integers(0, len(ta), size=(reps, len(ta)))
    return tuple(np.quantile(np.median(ta[idx], axis=1) / np.median(tb[idx], axis=1), [0.025, 0.975]))


def cost_study(batch_sizes, widths, reps, explicit_reps, *, estimators=None, max_explicit_bytes=MAX_EXPLICIT_BYTES):
    """Rows (width, B, estimator, median s, × shared, memory bytes, runs, HLO summary, CI).

    Per (width, B), the fast estimators are timed round robin for ``reps`` rounds, the
    order reversed every round, so their ratios to the shared-sample layer come with a 95%
    bootstrap interval over the paired rounds; explicit per-example weights (seconds per
    call) are timed afterwards, ``explicit_reps`` times, and skipped above
    ``max_explicit_bytes`` of compiled memory."""
    estimators = estimators or {**ESTIMATORS, **COST_ONLY}
    slow = "independent per-example"
    rows = []
    for width in widths:
        params = nn.init_dense(jax.random.key(0), width, width, init_scale=0.1)
        for b in batch_sizes:
            x = jax.random.normal(jax.random.key(b), (b, width))
            fns, mem, hlo = {}, {}, {}
            for name, layer in estimators.items():
                f = jax.jit(jax.grad(lambda p, xx, k, layer=layer: jnp.sum(jnp.square(layer(p, xx, k)))))
                compiled = f.lower(params, x, jax.random.key(1)).compile()
                mem[name], hlo[name] = memory_bytes(compiled), hlo_summary(compiled)
                if name == slow and mem[name] > max_explicit_bytes:
                    continue
                fns[name] = compiled
                jax.block_until_ready(compiled(params, x, jax.random.key(2)))  # warm up

            def timed(fn, r):
                key = jax.random.key(r)
                t0 = time.perf_counter()
                jax.block_until_ready(fn(params, x, key))
                return time.perf_counter() - t0

            fast = [name for name in fns if name != slow]
            times = {name: [] for name in fns}
            for r in range(reps):
                for name in fast if r % 2 == 0 else fast[::-1]:
                    times[name].append(timed(fns[name], r))
            if slow in fns:
                times[slow] = [timed(fns[slow], r) for r in range(explicit_reps)]
            base = statistics.median(times["shared sample"])
            for name in estimators:
                t = statistics.median(times[name]) if name in times else float("nan")
                ci = ratio_ci(times[name], times["shared sample"]) if name in fast else (float("nan"),) * 2
                if name in fast:  # the ratio of the fastest calls: the least disturbed by other load
                    ci = (*ci, min(times[name]) / min(times["shared sample"]))
                else:
                    ci = (*ci, float("nan"))
                rows.append((width, b, name, t, t / base, mem[name], len(times.get(name, [])), hlo[name], ci))
            print(f"  cost: d={width} B={b} done", flush=True)
    return rows


# ---------------------------------------------------------------------------- report


def variance_report(var_results):
    lines = [
        f"### (a) Gradient variance vs batch size (frozen MLP 64-{HIDDEN}-10 on digits, posterior std {POSTERIOR_STD})",
        "",
        "Total variance Σ_j Var(ĝ_j) of the gradient w.r.t. all posterior parameters, ± 1 SE; "
        "replicates per point in the header.",
        "",
        "| N | " + " | ".join(f"{k} (R={r})" for k, (r, _) in var_results.items()) + " |",
        "|---:|" + "---:|" * len(var_results),
    ]
    ns = [row[0] for row in next(iter(var_results.values()))[1]]
    for i, n in enumerate(ns):
        cells = [f"{rows[i][1]:.4g} ± {rows[i][2]:.2g}" for _, rows in var_results.values()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "Weighted least-squares fit Var(N) = a + b/N (a: cross-example covariance):", ""]
    for name, (_, rows) in var_results.items():
        a, b = fit_a_b(rows)
        lines.append(f"- {name}: a = {a:.3g}, b = {b:.3g}")
    return lines


def cost_report(cost_rows):
    lines = [
        "### (b) Forward + backward cost, dense d → d, and (c) the compiled program",
        "",
        "| d | B | estimator | median time (ms) | × shared sample | 95% CI | min ratio | memory (MB, temp+args+out) "
        "| runs | matmuls in HLO | threefry hashes |",
        "|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for w, b, name, t, ratio, mem, runs, hlo, (lo, hi, min_ratio) in cost_rows:
        ts = "skipped" if math.isnan(t) else f"{1e3 * t:.3f}"
        rs = "–" if math.isnan(ratio) else f"{ratio:.2f}"
        cis = "" if math.isnan(lo) or name == "shared sample" else f"[{lo:.2f}, {hi:.2f}]"
        mins = "" if math.isnan(min_ratio) or name == "shared sample" else f"{min_ratio:.2f}"
        lines.append(
            f"| {w} | {b} | {name} | {ts} | {rs} | {cis} | {mins} | {mem / 1e6:.1f} | {runs} | {hlo['matmuls']} "
            f"| {hlo['hashes']} |"
        )
    by = {(w, b, n): t for w, b, n, t, *_ in cost_rows}
    lines.append("")
    for w, b in sorted({(r[0], r[1]) for r in cost_rows}):
        flip, shared = by[(w, b, "flipout")], by[(w, b, "shared sample")]
        expl = by.get((w, b, "independent per-example"), float("nan"))
        parts = [f"d={w}, B={b}: Flipout / shared = {flip / shared:.2f}"]
        if (w, b, "flipout, one uniform per sign (0.1.0)") in by:
            parts.append(f"0.1.0 formulation / shared = {by[(w, b, 'flipout, one uniform per sign (0.1.0)')] / shared:.2f}")
        parts.append(f"explicit per-example / Flipout = {expl / flip:.1f}" if not math.isnan(expl) else "explicit per-example skipped")
        lines.append("- " + "; ".join(parts))
    return lines


def report(var_results, cost_rows, args, elapsed):
    lines = [
        "## Flipout (benchmarks/flipout.py)",
        "",
        f"Machine: {platform.machine()} CPU container, {os.cpu_count()} cores, jax {jax.__version__}; "
        f"{datetime.date.today().isoformat()}; {'--small' if args.small else 'full run'} ({elapsed:.0f} s).",
        "",
    ]
    if var_results:
        lines += variance_report(var_results) + [""]
    lines += cost_report(cost_rows)
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--cost-only", action="store_true", help="only (b) and (c), the cost study")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.small:
        ns, groups, reps, explicit_reps, chunk_examples = (1, 4), (4,), 8, 8, 4096
        batch_sizes, widths, t_reps, t_explicit = (8,), (16,), 3, 2
    else:
        ns, groups, reps, explicit_reps, chunk_examples = tuple(2**k for k in range(14)), (64, 1024, 8192), 128, 48, 16384
        batch_sizes, widths, t_reps, t_explicit = (128, 512, 2048), (256, 512), 100, 3
    names = ("shared sample", "flipout") if args.small else tuple(ESTIMATORS)
    var_results = {} if args.cost_only else variance_study(ns, groups, reps, explicit_reps, chunk_examples, names)
    cost_rows = cost_study(batch_sizes, widths, t_reps, t_explicit)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    text = report(var_results, cost_rows, args, time.perf_counter() - t0)
    if var_results:
        plot = out / "flipout_variance_small.png" if args.small else ROOT / "benchmarks" / "flipout_variance.png"
        plot_variance(var_results, plot)
        text += f"\nPlot: {plot.relative_to(ROOT)}\n"
    name = "flipout_small.md" if args.small else ("flipout_cost.md" if args.cost_only else "flipout.md")
    (out / name).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
