"""DisARM: the antithetic ARM estimator with its augmentation noise integrated out."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels
from ..core.estimator import Estimator, Out
from . import _discrete


def disarm() -> Estimator:
    r"""The DisARM estimator of ∇φ E_{b∼Bern(σ(φ))}[f(b)].

    **Unbiased**, and never of higher variance than ARM at the same cost (it is ARM with
    the augmentation noise integrated out). With u ∼ U(0, 1)^d, the antithetic pair
    b = 1[u < σ(φ)], b̃ = 1[1 − u < σ(φ)] (both Bern(σ(φ))) gives, elementwise,

    .. math::

      \hat g_i = \tfrac12\,(f(b) - f(\tilde b))\,(-1)^{\tilde b_i}\,
        \mathbb{1}[b_i \ne \tilde b_i]\,\sigma(|\phi_i|).

    ``num_samples`` = N independent pairs are averaged (2N evaluations of f; aux stacked over
    the b's, then the b̃'s). For the multi-sample bound log (1/K) Σ_k w(b_k) see
    ``rg.disarm_multisample()``. First derivatives only.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda b: jnp.sum(b), lambda p: rg.Bernoulli(logits=p), rg.disarm(),
      ...             num_samples=64)(jnp.zeros(2), jax.random.key(0))  # exact: 0.25 each

    References:
      Dong, Mnih & Tucker, "DisARM: An Antithetic Gradient Estimator for Binary Latent
      Variables", NeurIPS 2020 (arXiv:2006.10680).
    """

    def surrogate(problem, d, key, state, control):
        n = problem.num_samples
        logits = _discrete.bernoulli_logits(d, "disarm")
        theta = jax.lax.stop_gradient(logits)
        u = _discrete.uniform(key, (n,) + theta.shape, theta.dtype)
        b, b_tilde = _discrete.antithetic_pair(theta, u)
        values, aux = problem.evaluate(jnp.concatenate([b, b_tilde], axis=0), 2 * n, problem.tile_keys(2))
        coef = _discrete.disarm_coefficient(theta, b, b_tilde)
        g = jnp.mean(0.5 * _discrete.per_sample(values[:n] - values[n:], coef) * coef, axis=0)
        value = jnp.mean(values)
        return Out(value + kernels.pullback([(logits, g)], "disarm", value.dtype), value, aux)

    return Estimator("disarm", surrogate, max_order=1, family="bernoulli")
