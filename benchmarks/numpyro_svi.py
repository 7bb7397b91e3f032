"""numpyro SVI on a model with discrete latents: the exact ELBO against wall time for
``TraceGraph_ELBO`` (score function, no baseline), ``TraceEnum_ELBO`` (exact enumeration; needs
funsor), and ``rg.numpyro.ELBO`` with score + leave-one-out and with DisARM.

Model: a two-component Bernoulli mixture of binarized scikit-learn digits (``load_digits``,
8×8 images, pixels > 8 are 1; the classes 0 and 1): c_n ~ Bernoulli(½), x_nd ~ Bernoulli(
σ(θ_{c_n, d})), θ learned by SVI (a numpyro.param in the model); the guide is a Bernoulli per
image with its own logit. Every method uses the same number of particles, Adam(0.05), the same
initial θ and keys. The exact ELBO (a sum over the two components per image, in closed form)
is measured every few steps, outside the timed updates.

Usage::

    python benchmarks/numpyro_svi.py            # 1000 steps, 4 particles
    python benchmarks/numpyro_svi.py --small    # a few steps (smoke test)

Writes ``benchmarks/out/numpyro_svi.json`` (or ``--out``): per method, (seconds, ELBO) pairs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer import SVI, TraceGraph_ELBO

import repgrad as rg


def load(num_images=None):
    """Binarized digits 0 and 1 from scikit-learn (shipped with the package, no download)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = digits.target <= 1
    x = (digits.data[keep] > 8).astype(np.float32)
    return jnp.asarray(x[:num_images] if num_images else x)


def model(x):
    theta = numpyro.param("theta", 0.1 * jax.random.normal(jax.random.key(42), (2, x.shape[1])))
    with numpyro.plate("data", x.shape[0]):
        c = numpyro.sample("c", dist.Bernoulli(0.5))
        numpyro.sample("x", dist.Bernoulli(logits=theta[c]).to_event(1), obs=x)


def guide(x):
    logits = numpyro.param("c_logits", jnp.zeros(x.shape[0]))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("c", dist.Bernoulli(logits=logits), infer={"enumerate": "parallel"})


def exact_elbo(params, x):
    """Σ_n Σ_c q(c) (log ½ + log p(x_n | c) − log q(c)): the ELBO the methods climb."""
    log_lik = jnp.sum(x[:, None, :] * jax.nn.log_sigmoid(params["theta"]) + (1 - x[:, None, :]) * jax.nn.log_sigmoid(-params["theta"]), -1)
    log_q = jnp.stack([jax.nn.log_sigmoid(-params["c_logits"]), jax.nn.log_sigmoid(params["c_logits"])], -1)
    return jnp.sum(jnp.exp(log_q) * (jnp.log(0.5) + log_lik - log_q))


def methods(num_particles):
    out = {
        "TraceGraph_ELBO": TraceGraph_ELBO(num_particles),
        "rg score:loo": rg.numpyro.ELBO(num_particles, estimators={"c": "score:loo"}),
        "rg disarm": rg.numpyro.ELBO(num_particles, estimators={"c": rg.disarm()}),
    }
    try:
        import funsor  # noqa: F401  (TraceEnum_ELBO needs it)
        from numpyro.infer import TraceEnum_ELBO

        out["TraceEnum_ELBO"] = TraceEnum_ELBO()
    except ImportError:
        pass
    return out


def train(elbo, x, steps, every, seed=0, lr=0.05):
    """[(seconds of updates so far, exact ELBO)] every ``every`` steps."""
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        svi = SVI(model, guide, optax.adam(lr), loss=elbo)
        state = svi.init(jax.random.key(seed), x)
        update = jax.jit(svi.update)
        evaluate = jax.jit(lambda s: exact_elbo(svi.get_params(s), x))
        jax.block_until_ready(update(state, x))  # compile outside the clock
        curve, elapsed = [(0.0, float(evaluate(state)))], 0.0
        for step in range(1, steps + 1):
            start = time.perf_counter()
            state, _ = update(state, x)
            jax.block_until_ready(state)
            elapsed += time.perf_counter() - start
            if step % every == 0 or step == steps:
                curve.append((elapsed, float(evaluate(state))))
    return curve


def run(steps, every, num_particles, num_images=None):
    x = load(num_images)
    return {name: train(elbo, x, steps, every) for name, elbo in methods(num_particles).items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a few steps on a few images (smoke test)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--out", default=None, help="JSON output (default benchmarks/out/numpyro_svi.json)")
    args = parser.parse_args(argv)
    steps = args.steps or (10 if args.small else 1000)
    curves = run(steps, max(1, steps // 20), args.particles, 40 if args.small else None)
    out = Path(args.out or Path(__file__).parent / "out" / "numpyro_svi.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": steps, "particles": args.particles, "curves": curves}, indent=1))
    print(f"| method | final exact ELBO | seconds for {steps} steps | ms / step |")
    print("|---|---|---|---|")
    for name, curve in curves.items():
        t, e = curve[-1]
        print(f"| {name} | {e:.1f} | {t:.2f} | {1000 * t / steps:.2f} |")
    return curves


if __name__ == "__main__":
    main()
