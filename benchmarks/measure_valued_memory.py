"""Memory and time of the measure-valued estimator against N and D, by ``chunk_size``.

The estimator evaluates f at N·D points per side (each sample with one coordinate replaced).
Evaluated all at once that is O(N·D²) memory — D = 100, N = 1e5 took 19.9 GB in 0.1.0. With
``chunk_size`` (default 2²⁰/D evaluations, at least 64) the evaluations are grouped over
coordinates and samples, so the replaced points cost O(chunk_size · D) on top of the O(N · D)
samples. This script reads XLA's compiled memory analysis (temporaries) for each cell —
including an unchunked row (chunk_size = N·D, 0.1.0's layout) for comparison, compiled but not
run — and times the cells small enough to run here.

Problem: f(x) = Σ_d cos(x_d) + x_d²/2, x ~ N(loc, diag(scale²)).

Usage::

    python benchmarks/measure_valued_memory.py           # N ∈ {1e3, 1e4, 1e5}, D ∈ {10, 100}
    python benchmarks/measure_valued_memory.py --small   # tiny cells (smoke test)

Writes a markdown table to stdout and to ``benchmarks/out/measure_valued_memory.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import repgrad as rg


def f(x):
    return jnp.sum(jnp.cos(x) + 0.5 * x * x)


def cell(n, d, chunk, run):
    params = {"loc": jnp.zeros(d), "scale": jnp.ones(d)}
    grad = jax.jit(rg.grad(f, lambda p: rg.Normal(p["loc"], p["scale"]), rg.measure_valued(chunk_size=chunk), num_samples=n))
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = grad.lower(params, key).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", float("nan"))
    seconds = float("nan")
    if run:
        jax.block_until_ready(compiled(params, key))
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(params, key))
        seconds = time.perf_counter() - t0
    return temp, compile_s, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--out", default=None, help="markdown output (default benchmarks/out/measure_valued_memory.md)")
    args = parser.parse_args(argv)
    if args.small:
        grid = [(64, 4, None, True), (64, 4, 16, True)]
    else:
        grid = [
            (n, d, c, c != "all" and n * d <= (10**7 if c is None else 10**6))
            for n in (1000, 10000, 100000)
            for d in (10, 100)
            for c in (None, 4096, "all")
        ]
    rows = []
    for n, d, chunk, run in grid:
        size = n * d if chunk == "all" else chunk
        temp, compile_s, seconds = cell(n, d, size, run)
        evals = 4 * n * d + n
        floor = n * d * 4
        label = {None: f"default ({max(64, 2**20 // d)})", "all": f"unchunked ({n * d})"}.get(chunk, chunk)
        rows.append((n, d, label, evals, temp / 2**20, temp / max(floor, 1), compile_s, seconds))
    header = (
        "| N | D | chunk_size | f evaluations | temporaries MiB | temporaries / (N·D·4 B) | compile s | run s |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(f"| {n} | {d} | {c} | {e} | {m:.1f} | {r:.1f} | {cs:.1f} | {s:.3f} |\n" for n, d, c, e, m, r, cs, s in rows)
    meta = (
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
        f"{jax.devices()[0].platform}, {datetime.date.today()}; run s = one call after warm-up (nan: not run here)\n"
    )
    table = header + body + meta
    print(table)
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "out" / "measure_valued_memory.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    return rows


if __name__ == "__main__":
    main()
