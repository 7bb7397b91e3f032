"""The headline comparisons in one run on one accelerator (GPU or TPU), in under 5 minutes.

Written to run unattended on a lent machine: one command, results in one file, the device
named in it. Each section reuses the measurement code of its own benchmark script, so the
numbers mean what they mean in RESULTS.md:

1. ``overhead``: every repgrad transform against the same estimator hand-written in JAX
   from the same draws (benchmarks/overhead.py: gradients checked equal, calls interleaved,
   bootstrap CI of the ratio, compiled memory, diff of the optimized HLO), at N × D cells
   sized for an accelerator.
2. ``flipout``: forward + backward of a dense d → d layer, Flipout against one shared
   weight sample, local reparameterization and explicit per-example weights (skipped above
   a memory guard), at B = 128 … 8192 and d = 256, 512 (benchmarks/flipout.py: timed
   round robin, ratios to the shared-sample layer from the same run, compiled memory,
   matmuls and threefry hashes in the optimized HLO).
3. ``peers``: the Bayesian logistic regression and Gaussian VAE optimizer steps of
   benchmarks/peers.py, repgrad (pathwise) against numpyro ``Trace_ELBO`` when numpyro is
   installed: time per step (interleaved), compile time, compiled memory, XLA's flop and
   byte counts, gradient variance.

Every section checks the clock: past its share of ``--budget-s`` (default 270 s) it stops
and records what it skipped. Writes ``accelerator.json`` (everything, machine-readable) and
``accelerator.md`` (the tables) to ``--out`` (default ``benchmarks/out``).

Usage::

    python benchmarks/accelerator.py              # on the accelerator (JAX's default backend)
    python benchmarks/accelerator.py --small      # seconds, on CPU (the test suite runs this)

To record a run: copy the tables of ``accelerator.md`` into RESULTS.md under "Accelerator",
with the device line it starts with.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SETTINGS = {
    "full": {
        "overhead_cells": [(1000, 100), (10000, 1000), (100000, 100)],
        "overhead_timing": dict(min_reps=21, max_reps=301, budget_s=2.0, target=0.02),
        "flipout_batches": (128, 512, 2048, 8192),
        "flipout_widths": (256, 512),
        "flipout_reps": 100,
        "flipout_explicit_reps": 5,
        "explicit_max_bytes": 16e9,
        "peers_reps": 200,
        "peers_var_reps": 200,
        "peers_problems": ("lr", "vae"),
        "budget_share": {"overhead": 0.35, "flipout": 0.35, "peers": 0.30},
    },
    "small": {
        "overhead_cells": [(8, 3)],
        "overhead_only": ("pathwise_grad", "score_grad", "measure_valued_grad"),
        "overhead_timing": dict(min_reps=10, max_reps=40, budget_s=0.2, target=0.05),
        "flipout_batches": (8,),
        "flipout_widths": (16,),
        "flipout_reps": 3,
        "flipout_explicit_reps": 2,
        "explicit_max_bytes": 1e8,
        "peers_reps": 3,
        "peers_var_reps": 8,
        "peers_problems": ("lr",),
        "budget_share": {"overhead": 0.35, "flipout": 0.35, "peers": 0.30},
    },
}


def machine():
    dev = jax.devices()[0]
    return {
        "device": f"{dev.platform.upper()} {getattr(dev, 'device_kind', '')}".strip(),
        "device_count": jax.device_count(),
        "platform": dev.platform,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "host": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores",
        "date": datetime.date.today().isoformat(),
    }


# ----------------------------------------------------------------------------- sections


def section_overhead(cfg, deadline):
    ov = _load("overhead")
    rows, skipped = [], []
    for n, d in cfg["overhead_cells"]:
        params = ov.make_params(d)
        for name, fa, fb, is_mvd in ov.cases(n):
            if cfg.get("overhead_only") and name not in cfg["overhead_only"]:
                continue
            if time.perf_counter() > deadline:
                skipped.append(f"{name} N={n} D={d}: time budget spent")
                continue
            if is_mvd and 4.0 * n * d * d > ov.MVD_MAX_F_ELEMS:
                skipped.append(f"{name} N={n} D={d}: 4·N·D f-evaluations of size D (by design; see overhead.py)")
                continue
            rows.append(ov.measure(name, n, d, params, fa, fb, **cfg["overhead_timing"]))
    return {"rows": rows, "skipped": skipped, "table": ov.table(rows)}


def section_flipout(cfg, deadline):
    fl = _load("flipout")
    rows, skipped = [], []
    for width in cfg["flipout_widths"]:
        for b in cfg["flipout_batches"]:
            if time.perf_counter() > deadline:
                skipped.append(f"d={width} B={b}: time budget spent")
                continue
            rows += fl.cost_study(
                (b,), (width,), cfg["flipout_reps"], cfg["flipout_explicit_reps"],
                max_explicit_bytes=cfg["explicit_max_bytes"],
            )  # fmt: skip
    records = [
        dict(width=w, batch=b, estimator=name, ms=1e3 * t, ratio=r, ci=list(ci[:2]), min_ratio=ci[2],
             memory_bytes=mem, runs=runs, **hlo)
        for w, b, name, t, r, mem, runs, hlo, ci in rows
    ]
    return {"rows": records, "skipped": skipped, "table": "\n".join(fl.cost_report(rows)) if rows else ""}


def section_peers(cfg, deadline):
    pe = _load("peers")
    import jax.numpy as jnp

    out, skipped = {}, []
    n_samples = {"lr": 16, "vae": 4}
    for problem in cfg["peers_problems"]:
        if time.perf_counter() > deadline:
            skipped.append(f"{problem}: time budget spent")
            continue
        n = n_samples[problem]
        if problem == "lr":
            params_np, data_np, is_var = pe.lr_init(), pe.lr_data(), (lambda k: True)
        else:
            params_np, data_np, is_var = pe.vae_init(), (pe.vae_data(128),), (lambda k: k in pe.ENC)
        params = {k: jnp.asarray(v) for k, v in params_np.items()}
        data = tuple(jnp.asarray(a) for a in data_np)
        reps, var_reps = cfg["peers_reps"], cfg["peers_var_reps"]
        loss = pe.repgrad_losses(n)["pathwise"][problem]
        rows = {}
        makers = {
            "repgrad pathwise": lambda: pe.run_jax_row(problem, loss, params, data, reps, var_reps, is_var),
            "numpyro Trace_ELBO": lambda: pe.run_numpyro_row(
                problem, n, "Trace_ELBO", params, data, reps, var_reps, is_var
            ),
        }
        for name, make in makers.items():
            try:  # optax and numpyro promote internally: run under JAX's default promotion
                with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
                    rows[name] = make()
            except ImportError as e:
                rows[name] = {"error": f"not installed: {e}"}
        pe._time_interleaved(rows, reps)
        for r in rows.values():
            for k in ("grad_mean", "grad_var_coords"):
                r.pop(k, None)
        out[problem] = {"num_samples": n, "rows": rows}
    return {"problems": out, "skipped": skipped, "table": _peers_table(out)}


def _peers_table(problems):
    lines = []
    for problem, res in problems.items():
        rows = res["rows"]
        ref = rows.get("repgrad pathwise", {})
        lines += [
            f"**{problem}** (N = {res['num_samples']} samples)",
            "",
            "| library | ms/step | × repgrad | compile s | peak memory (MiB) | XLA Mflop / MB accessed | grad variance ± SE |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows.items():
            if "error" in r:
                lines.append(f"| {name} | {r['error']} | | | | | |")
                continue
            ratio = r["median_ms"] / ref["median_ms"] if "median_ms" in ref else float("nan")
            cost = (
                f"{r['flops'] / 1e6:.2f} / {r['bytes_accessed'] / 1e6:.2f}"
                if r.get("flops") is not None and r.get("bytes_accessed") is not None
                else "n/a"
            )
            peak = f"{r['peak_bytes'] / 2**20:.2f}" if r.get("peak_bytes") else "n/a"
            lines.append(
                f"| {name} | {r['median_ms']:.3f} | {ratio:.2f} | {r['compile_s']:.2f} | {peak} | {cost} "
                f"| {r['grad_var']:.4g} ± {r['grad_var_se']:.2g} |"
            )
        lines.append("")
    return "\n".join(lines)


SECTIONS = {"overhead": section_overhead, "flipout": section_flipout, "peers": section_peers}


# --------------------------------------------------------------------------------- main


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.bool_):
        return bool(o)
    return str(o)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny settings, seconds on CPU (smoke test)")
    parser.add_argument("--budget-s", type=float, default=270.0, help="wall-clock budget for all sections")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    parser.add_argument("--out", default=str(HERE / "out"), help="directory for accelerator.json / .md")
    args = parser.parse_args(argv)
    cfg = SETTINGS["small" if args.small else "full"]
    start = time.perf_counter()
    results = {"machine": machine(), "settings": "small" if args.small else "full", "sections": {}}
    print(f"# accelerator run: {results['machine']}", file=sys.stderr, flush=True)
    spent = 0.0
    for name in args.sections.split(","):
        share = cfg["budget_share"][name] * args.budget_s
        t0 = time.perf_counter()
        results["sections"][name] = SECTIONS[name](cfg, deadline=t0 + share)
        results["sections"][name]["seconds"] = time.perf_counter() - t0
        spent = time.perf_counter() - start
        print(f"# {name}: {results['sections'][name]['seconds']:.1f} s", file=sys.stderr, flush=True)
    results["seconds"] = spent

    m = results["machine"]
    md = [
        f"# repgrad on {m['device']} ({m['device_count']} device(s)), jax {m['jax']}, {m['date']}",
        "",
        f"Host: {m['host']}, python {m['python']}; settings: {results['settings']}; "
        f"{spent:.0f} s in all (budget {args.budget_s:.0f} s).",
    ]
    titles = {
        "overhead": "Overhead against hand-written JAX (benchmarks/overhead.py)",
        "flipout": "Flipout against shared-sample, local reparameterization and per-example weights (benchmarks/flipout.py)",
        "peers": "Peers: BLR and VAE optimizer steps (benchmarks/peers.py)",
    }
    for name, sec in results["sections"].items():
        md += ["", f"## {titles[name]}", "", sec["table"]]
        if sec["skipped"]:
            md += ["", "Skipped: " + "; ".join(sec["skipped"])]
    text = "\n".join(md) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accelerator.md").write_text(text)
    (out / "accelerator.json").write_text(json.dumps(results, indent=1, default=_json_default))
    print(text)
    return results


if __name__ == "__main__":
    main()
