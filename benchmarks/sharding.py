"""Scaling of a sharded sample axis over 1, 2, 4, 8 devices.

Workload: one gradient step of the negative ELBO of a Bayesian logistic regression with
a diagonal Gaussian posterior (synthetic data, D features, M examples), pathwise
estimator with ``num_samples`` samples, whose sample axis is sharded with::

    mesh = jax.make_mesh((k,), ("samples",), axis_types=(jax.sharding.AxisType.Auto,))
    loss = rg.expectation(f, dist, num_samples=n, sample_sharding=NamedSharding(mesh, P("samples")))

On CPU each device count needs its own process (``XLA_FLAGS=--xla_force_host_platform_device_count=k``
must be set before jax is imported), so the parent spawns one child per k. On a
multi-GPU machine, run with ``--platform gpu``: the children then use the first k GPUs.

Usage::

    python benchmarks/sharding.py            # full: 1, 2, 4, 8 devices
    python benchmarks/sharding.py --small    # a few seconds (smoke test)

Prints a Markdown table: median time per step (after compilation), compile time, and
speedup relative to 1 device measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def child(k: int, num_samples: int, features: int, examples: int, reps: int, platform_name: str) -> dict:
    if platform_name == "cpu":
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={k}"
        os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import repgrad as rg

    devices = jax.devices()[:k]
    if len(devices) < k:
        return {"devices": k, "error": f"only {len(devices)} devices"}
    mesh = jax.make_mesh((k,), ("samples",), axis_types=(AxisType.Auto,), devices=devices)
    sharding = NamedSharding(mesh, P("samples"))

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(examples, features)), jnp.float32)
    y = jnp.asarray(rng.random(examples) < 0.5, jnp.float32)

    def neg_log_joint(w, x, y):
        logits = x @ w
        log_lik = jnp.sum(y * jax.nn.log_sigmoid(logits) + (1.0 - y) * jax.nn.log_sigmoid(-logits))
        return -(log_lik - 0.5 * jnp.sum(w * w))

    dist = lambda p: rg.MultivariateNormalDiag(p["loc"], jax.nn.softplus(p["raw_scale"]))
    loss = rg.expectation(
        neg_log_joint, dist, estimator="pathwise", num_samples=num_samples,
        sample_sharding=sharding if k > 1 else None,
    )
    step = jax.jit(jax.value_and_grad(loss))
    params = {"loc": jnp.zeros(features), "raw_scale": jnp.full(features, -2.0)}
    key = jax.random.key(0)
    t0 = time.perf_counter()
    compiled = step.lower(params, key, x, y).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(params, key, x, y))
    times = []
    for i in range(reps):
        kk = jax.random.fold_in(key, i)
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(params, kk, x, y))
        times.append(time.perf_counter() - t0)
    return {
        "devices": k,
        "platform": devices[0].platform,
        "median_ms": 1e3 * float(np.median(times)),
        "compile_s": compile_s,
        "reps": reps,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny settings (smoke test)")
    ap.add_argument("--devices", default="1,2,4,8")
    ap.add_argument("--platform", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this path")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--num-samples", type=int, default=None)
    args = ap.parse_args(argv)

    n = args.num_samples or (64 if args.small else 1024)
    features, examples = (16, 256) if args.small else (64, 4096)
    reps = 5 if args.small else 50
    if args.child is not None:
        print(json.dumps(child(args.child, n, features, examples, reps, args.platform)))
        return 0

    ks = [int(s) for s in args.devices.split(",")]
    if args.small:
        ks = ks[:2]
    rows = []
    for k in ks:
        if n % k:
            raise SystemExit(f"num_samples={n} must be divisible by every device count; got {k}")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(k), "--num-samples", str(n),
               "--platform", args.platform] + (["--small"] if args.small else [])
        env = {k_: v for k_, v in os.environ.items() if k_ != "XLA_FLAGS"}
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))

    base = rows[0]["median_ms"]
    print(f"# sample-axis sharding: pathwise ELBO step, N={n} samples, D={features}, M={examples}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, {args.platform}")
    print("| devices | median ms/step | compile s | speedup vs 1 |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['devices']} | {r['median_ms']:.2f} | {r['compile_s']:.2f} | {base / r['median_ms']:.2f}x |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
