"""VIMCO: leave-one-out score-function gradients of a K-sample bound E[log (1/K) Σ_k w(b_k)]."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from ..core import kernels, protocol
from ..core.estimator import Estimator, Out

_sg = jax.lax.stop_gradient


def log_mean_exp(a, axis=-1):
    return logsumexp(a, axis=axis) - math.log(a.shape[axis])


def replace_each(a, b):
    """(K, K) matrix whose row k is ``a`` with entry k replaced by ``b[k]``."""
    k = a.shape[0]
    eye = jnp.eye(k, dtype=bool)
    return jnp.where(eye, jnp.broadcast_to(b[:, None], (k, k)), jnp.broadcast_to(a[None, :], (k, k)))


def vimco() -> Estimator:
    r"""The VIMCO estimator of the multi-sample bound L = E[log (1/K) Σ_k w(b_k)].

    Here f is the per-sample **log-weight** log w(b) (e.g. log p(x, b) − log q(b | x)), the
    K = ``num_samples`` ≥ 2 samples b_1..K ∼ q_θ are i.i.d. from ``dist(params)``, and the
    value is the K-sample bound. **Unbiased** for ∇ of the bound (not of log p(x)). With
    L̂ = log (1/K) Σ w_k and L̂_{−k} the bound with w_k replaced by the geometric mean of the
    others, ŵ_{−k} = exp((1/(K−1)) Σ_{j≠k} log w_j),

    .. math::

      \hat g = \sum_k (\hat L - \hat L_{-k})\,\nabla_\theta \log q_\theta(b_k) + \nabla \hat L,

    where the last term (the gradient w.r.t. log_weight's own arguments, e.g. the decoder,
    or θ where log w contains log q_θ) flows by ordinary autodiff. Works for any
    distribution with ``log_prob``. First derivatives only.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda b: -jnp.sum(b), lambda p: rg.Bernoulli(logits=p), rg.vimco(),
      ...             num_samples=4)(jnp.zeros(2), jax.random.key(0))

    References:
      Mnih & Rezende, "Variational Inference for Monte Carlo Objectives", ICML 2016
      (arXiv:1602.06725).
    """

    def surrogate(problem, d, key, state, control):
        k = problem.num_samples
        x, log_p = protocol.draw_scored(d, key, k, problem.shard)
        log_w, aux = problem.evaluate(x)
        bound = log_mean_exp(log_w, axis=0)
        lw = _sg(log_w)
        loo_mean = (jnp.sum(lw) - lw) / (k - 1)  # log of the geometric mean of the others
        signal = log_mean_exp(log_w, axis=0) - log_mean_exp(replace_each(log_w, loo_mean), axis=1)
        return Out(bound + kernels.pullback([(log_p, signal)], "vimco", bound.dtype), bound, aux)

    return Estimator("vimco", surrogate, min_samples=2, max_order=1, log_weight=True)
