"""Test problems with exact gradients: E_{N(μ, σ²)}[f(x; k)] for the costs of Mohamed et al.

For x ~ N(μ, σ²) and a constant k the expectations have closed forms:

* quadratic f = (x − k)²: E = (μ − k)² + σ²; ∂μ = 2(μ − k), ∂σ = 2σ.
* cos f = cos(kx): E = cos(kμ) e^{−k²σ²/2}; ∂μ = −k sin(kμ) e^{−k²σ²/2},
  ∂σ = −k²σ cos(kμ) e^{−k²σ²/2}.
* exp f = exp(−kx²) (k > −1/(2σ²)): with s = 1 + 2kσ², E = s^{−1/2} e^{−kμ²/s};
  ∂μ = −(2kμ/s) E, ∂σ = (−2kσ/s + 4k²μ²σ/s²) E.

References:
  Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine
  Learning", JMLR 2020 (arXiv:1906.10652), §3, Figures 2–3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

from .. import distributions as _d


class Problem(NamedTuple):
    """An expectation to differentiate, with its exact gradient when known.

    Attributes:
      name: a label.
      f: ``f(x)`` returning a scalar for one sample.
      dist: ``dist(params)`` returning a distribution.
      params: the parameters (a pytree) at which to differentiate.
      exact: the exact gradient (pytree like ``params``) or ``None``.
      description: one line for tables and ``--help``.
    """

    name: str
    f: Callable[[Any], Any]
    dist: Callable[[Any], Any]
    params: Any
    exact: Any = None
    description: str = ""


def normal_dist(p):
    """``Normal(p["loc"], p["scale"])``: the distribution of the built-in problems."""
    return _d.Normal(p["loc"], p["scale"])


def _cost(cost: str, k: float):
    if cost == "quadratic":
        return lambda x: jnp.square(x - k)
    if cost == "cos":
        return lambda x: jnp.cos(k * x)
    if cost == "exp":
        return lambda x: jnp.exp(-k * jnp.square(x))
    raise ValueError(f"Unknown cost {cost!r}; choose one of {list(COSTS)}.")


def exact_gaussian_gradient(cost: str, k: float, loc: float, scale: float) -> dict:
    """∂/∂μ and ∂/∂σ of E_{N(μ, σ²)}[f(x; k)] in closed form (see the module docstring)."""
    mu, s = float(loc), float(scale)
    if cost == "quadratic":
        return {"loc": 2.0 * (mu - k), "scale": 2.0 * s}
    if cost == "cos":
        damp = math.exp(-0.5 * k * k * s * s)
        return {"loc": -k * math.sin(k * mu) * damp, "scale": -k * k * s * math.cos(k * mu) * damp}
    if cost == "exp":
        t = 1.0 + 2.0 * k * s * s
        if t <= 0:
            raise ValueError(f"E[exp(-k x²)] is infinite for k={k}, σ={s}; use k > -1/(2σ²).")
        value = math.exp(-k * mu * mu / t) / math.sqrt(t)
        return {"loc": -2.0 * k * mu / t * value, "scale": (-2.0 * k * s / t + 4.0 * k * k * mu * mu * s / (t * t)) * value}
    raise ValueError(f"Unknown cost {cost!r}; choose one of {list(COSTS)}.")


COSTS = {
    "quadratic": "(x − k)²",
    "cos": "cos(k·x)",
    "exp": "exp(−k·x²)",
}
DEFAULT_K = {"quadratic": 2.0, "cos": 2.0, "exp": 1.0}


def gaussian_problem(cost: str, k: float | None = None, *, loc: float = 1.0, scale: float = 1.0, dtype=jnp.float32) -> Problem:
    """E_{N(loc, scale²)}[f(x; k)] for ``cost`` in ``"quadratic" | "cos" | "exp"``.

    Example:
      >>> from repgrad.diagnostics import gaussian_problem
      >>> p = gaussian_problem("cos", 2.0)
      >>> round(p.exact["loc"], 4)
      -0.2461
    """
    if cost not in COSTS:
        raise ValueError(f"Unknown cost {cost!r}; choose one of {list(COSTS)}.")
    k = DEFAULT_K[cost] if k is None else float(k)
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}.")
    params = {"loc": jnp.asarray(loc, dtype), "scale": jnp.asarray(scale, dtype)}
    formula = COSTS[cost].replace("k", f"{k:g}")
    return Problem(
        name=f"{cost}(k={k:g})",
        f=_cost(cost, k),
        dist=normal_dist,
        params=params,
        exact=exact_gaussian_gradient(cost, k, loc, scale),
        description=f"E[{formula}], x ~ N({loc:g}, {scale:g}²)",
    )
