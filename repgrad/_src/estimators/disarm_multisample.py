"""Multi-sample (local) DisARM for a K-sample bound over factorized Bernoulli variables."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels
from ..core.estimator import Estimator, Out
from . import _discrete
from .vimco import log_mean_exp, replace_each


def disarm_multisample() -> Estimator:
    r"""Multi-sample (local) DisARM of L = E[log (1/K) Σ_k w(b_k)], q_θ = Bern(σ(φ)).

    f is the per-sample log-weight (as for ``rg.vimco()``). **Unbiased.** Draw K antithetic
    pairs (b_k, b̃_k) as in DisARM (2K evaluations of log w). Write F(a_1..K) = log (1/K) Σ
    exp(log w(a_k)). Conditionally on the other samples, DisARM applies to sample k alone;
    as "other samples" we use both b_{−k} and b̃_{−k} (each is i.i.d. q and independent of
    pair k) and average — a leave-one-out over pairs:

    .. math::

      \Delta_k = \tfrac12\big[F(b_k, b_{-k}) - F(\tilde b_k, b_{-k})
        + F(b_k, \tilde b_{-k}) - F(\tilde b_k, \tilde b_{-k})\big],

      \hat g_i = \sum_k \tfrac12 \Delta_k (-1)^{\tilde b_{k,i}}
        \mathbb{1}[b_{k,i} \ne \tilde b_{k,i}] \sigma(|\phi_i|).

    All F's come from the 2K log-weights (O(K²) arithmetic, no extra model calls). The
    value is ½(F(b) + F(b̃)); gradients w.r.t. log_weight's own arguments flow by autodiff
    through it. Derived from the local DisARM construction of Dong et al. (2020, §5);
    checked by enumeration in the tests. First derivatives only.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda b: -jnp.sum(b), lambda p: rg.Bernoulli(logits=p),
      ...             rg.disarm_multisample(), num_samples=4)(jnp.zeros(2), jax.random.key(0))

    References:
      Dong, Mnih & Tucker, "DisARM: An Antithetic Gradient Estimator for Binary Latent
      Variables", NeurIPS 2020 (arXiv:2006.10680).
    """

    def surrogate(problem, d, key, state, control):
        k = problem.num_samples
        logits = _discrete.bernoulli_logits(d, "disarm_multisample")
        theta = jax.lax.stop_gradient(logits)
        u = _discrete.uniform(key, (k,) + theta.shape, theta.dtype)
        b, b_tilde = _discrete.antithetic_pair(theta, u)
        log_w_all, aux = problem.evaluate(jnp.concatenate([b, b_tilde], axis=0), 2 * k, problem.tile_keys(2))
        lw, lwt = log_w_all[:k], log_w_all[k:]
        diff_b = log_mean_exp(lw, axis=0) - log_mean_exp(replace_each(lw, lwt), axis=1)
        diff_bt = log_mean_exp(replace_each(lwt, lw), axis=1) - log_mean_exp(lwt, axis=0)
        diff = (0.5 * (diff_b + diff_bt)).astype(theta.dtype)
        coef = _discrete.disarm_coefficient(theta, b, b_tilde)
        g = jnp.sum(0.5 * _discrete.per_sample(diff, coef) * coef, axis=0)
        value = 0.5 * (log_mean_exp(lw, axis=0) + log_mean_exp(lwt, axis=0))
        pull = kernels.pullback([(logits, g)], "disarm_multisample", value.dtype)
        return Out(value + pull, value, aux)

    return Estimator(
        "disarm_multisample", surrogate, min_samples=2, max_order=1, family="bernoulli", log_weight=True
    )
