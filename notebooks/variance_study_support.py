"""Monte Carlo side of variance_study.ipynb: one-sample gradients from repgrad's own estimators.

The exact curves come from the library (``repgrad.diagnostics.gaussian_per_sample_variance``,
by quadrature); this module draws the markers they are checked against. It lives next to the
notebook that imports it (Jupyter and the test suite run notebooks from their own folder),
and tests/test_variance_study.py loads it by path for its statistical check.
"""

from __future__ import annotations

import math
from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

import repgrad as rg
from repgrad.diagnostics import optimal_constant_baseline

ESTIMATORS = ("score", "score_optimal_baseline", "pathwise", "measure_valued", "measure_valued_uncoupled")
COST_INDEX = {"quadratic": 0, "cos": 1, "exp": 2}


def cost(x, k, c):
    """The three costs of the study, chosen by a traced index ``c``: one compilation serves all."""
    branches = (lambda x: jnp.square(x - k), lambda x: jnp.cos(k * x), lambda x: jnp.exp(-k * jnp.square(x)))
    return jax.lax.switch(c, branches, x)


def constant_baseline():
    """A score baseline whose state is the constant b itself, given at each call."""
    return rg.Baseline(apply=lambda values, b: (b.astype(values.dtype), b), init=lambda: 0.0, name="constant")


@cache
def _sampler(kind: str, num: int):
    """A jitted ``run(params, key, k, c, b)``: ``num`` one-sample gradients, vmapped over keys."""
    dist = lambda p: rg.Normal(p["loc"], p["scale"])
    if kind == "score":  # with a constant baseline b (0 for the plain estimator)
        score = rg.score_grad(cost, dist, num_samples=1, baseline=constant_baseline())
        one = lambda params, key, k, c, b: score(params, key, k, c, baseline_state=b)[0]
    else:
        if kind == "pathwise":
            grad = rg.pathwise_grad(cost, dist, num_samples=1)
        else:
            grad = rg.measure_valued_grad(cost, dist, num_samples=1, coupled=kind == "measure_valued")
        one = lambda params, key, k, c, b: grad(params, key, k, c)

    def run(params, key, k, c, b):
        return jax.vmap(lambda kk: one(params, kk, k, c, b))(jax.random.split(key, num))

    return jax.jit(run)


def sample_per_sample_estimates(cost_name: str, k: float, estimator: str, key, num: int, *, loc=1.0, scale=1.0) -> dict:
    """``num`` independent one-sample estimates of ∂/∂μ and ∂/∂σ of E_{N(loc, scale²)}[f(x; k)].

    ``rg.pathwise_grad``, ``rg.score_grad`` and ``rg.measure_valued_grad`` with
    ``num_samples=1``, vmapped over ``num`` keys (k and the cost are traced arguments, so
    one compilation per estimator). ``"score_optimal_baseline"`` runs ``rg.score_grad``
    with a constant baseline b, once with b*_μ (the loc column) and once with b*_σ (the
    scale column), the keys shared.

    Returns:
      ``{"loc": (num,), "scale": (num,)}`` float32 numpy arrays.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"Unknown estimator {estimator!r}; choose one of {ESTIMATORS}.")
    if cost_name not in COST_INDEX:
        raise ValueError(f"Unknown cost {cost_name!r}; choose one of {list(COST_INDEX)}.")
    params = {"loc": jnp.float32(loc), "scale": jnp.float32(scale)}
    run = _sampler("score" if estimator.startswith("score") else estimator, int(num))
    kk, c = jnp.float32(k), jnp.int32(COST_INDEX[cost_name])
    if estimator == "score_optimal_baseline":
        b = optimal_constant_baseline(cost_name, k, loc=loc, scale=scale)
        g_loc = run(params, key, kk, c, jnp.float32(b["loc"]))
        g_scale = run(params, key, kk, c, jnp.float32(b["scale"]))
        return {"loc": np.asarray(g_loc["loc"]), "scale": np.asarray(g_scale["scale"])}
    out = run(params, key, kk, c, jnp.float32(0.0))
    return {"loc": np.asarray(out["loc"]), "scale": np.asarray(out["scale"])}


def variance_and_se(samples) -> tuple[float, float]:
    """The sample variance and its standard error from the fourth central moment,
    SE² = (m₄ − v²)/n (large-n delta method)."""
    x = np.asarray(samples, np.float64)
    n = x.shape[0]
    d = x - x.mean()
    v = float(np.sum(d * d) / (n - 1))
    m4 = float(np.mean(d**4))
    return v, math.sqrt(max(m4 - v * v, 0.0) / n)
