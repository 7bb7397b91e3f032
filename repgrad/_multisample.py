"""Estimators for multi-sample bounds L = E[log (1/K) Σ_k w(b_k)]: VIMCO and
multi-sample (local) DisARM.

Here the user gives ``log_weight(b, *args)``, the log-weight of one sample (e.g.
log p(x, b) − log q(b | x) for an importance-weighted bound), and the K samples
b_1..K ∼ q_θ are drawn i.i.d. from ``dist(params)``. The objective couples the K
samples through the log-mean-exp, which is what both estimators exploit.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from . import _core
from . import _discrete_common as _dc

_sg = jax.lax.stop_gradient


def _log_mean_exp(a, axis=-1):
    return logsumexp(a, axis=axis) - math.log(a.shape[axis])


def _replace_each(a, b):
    """(K, K) matrix whose row k is ``a`` with entry k replaced by ``b[k]``."""
    k = a.shape[0]
    eye = jnp.eye(k, dtype=bool)
    return jnp.where(eye, jnp.broadcast_to(b[:, None], (k, k)), jnp.broadcast_to(a[None, :], (k, k)))


def _vimco_surrogate(f, dist, *, num_samples, has_aux, sample_sharding=None):
    _core.check_num_samples(num_samples, 2, " for VIMCO (leave-one-out needs K >= 2)")
    k = num_samples

    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        x = _sg(_core.shard_samples(_core.draw(d, key, k), sample_sharding))
        log_w, aux = _core.eval_f(f, x, args, has_aux, k)
        bound = _log_mean_exp(log_w, axis=0)
        lw = _sg(log_w)
        # Replace log w_k by the mean of the others (the geometric mean of the w_j, j ≠ k).
        loo_mean = (jnp.sum(lw) - lw) / (k - 1)
        bound_minus_k = _log_mean_exp(_replace_each(lw, loo_mean), axis=1)
        signal = _sg(_log_mean_exp(lw, axis=0) - bound_minus_k)
        log_p = _core.joint_log_prob(d, x, k)
        score = jnp.sum(signal.astype(log_p.dtype) * (log_p - _sg(log_p))).astype(bound.dtype)
        return bound + score, (bound, aux, None)

    return _core.Surrogate(fn)


def _disarm_multisample_surrogate(f, dist, *, num_samples, has_aux, sample_sharding=None):
    _core.check_num_samples(num_samples, 2, " for multi-sample DisARM (K >= 2 samples per bound)")
    k = num_samples

    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        logits = _dc.bernoulli_logits(d, "disarm_multisample")
        theta = _sg(logits)
        shape = (k,) + theta.shape
        u = _dc.uniform(key, shape, theta.dtype)
        p = jax.nn.sigmoid(jnp.broadcast_to(theta, shape))
        b = (u < p).astype(theta.dtype)
        bt = (1.0 - u < p).astype(theta.dtype)
        x = _core.shard_samples(jnp.concatenate([b, bt], axis=0), sample_sharding)
        log_w_all, aux = _core.eval_f(f, x, args, has_aux, 2 * k)
        log_w, log_wt = log_w_all[:k], log_w_all[k:]
        lw, lwt = _sg(log_w), _sg(log_wt)
        # Per sample k, DisARM on b_k given the others, with the others taken from b
        # and from b̃ (each set is i.i.d. q and independent of pair k), averaged.
        diff_b = _log_mean_exp(lw, axis=0) - _log_mean_exp(_replace_each(lw, lwt), axis=1)
        diff_bt = _log_mean_exp(_replace_each(lwt, lw), axis=1) - _log_mean_exp(lwt, axis=0)
        diff = _sg(0.5 * (diff_b + diff_bt)).astype(theta.dtype)
        sign = jnp.where(bt > 0.5, -1.0, 1.0).astype(theta.dtype)
        coef = jnp.where(b != bt, sign, 0.0) * jax.nn.sigmoid(jnp.abs(jnp.broadcast_to(theta, shape)))
        g = jnp.sum(0.5 * _dc.per_sample(diff, coef) * coef, axis=0)
        value = 0.5 * (_log_mean_exp(log_w, axis=0) + _log_mean_exp(log_wt, axis=0))
        return _dc.pullback(value, logits, g), (value, aux, None)

    return _core.Surrogate(fn)


def vimco_value_and_grad(log_weight, dist, *, num_samples: int = 2, has_aux: bool = False, sample_sharding=None):
    r"""Value and VIMCO gradient of the multi-sample bound L = E[log (1/K) Σ_k w(b_k)].

    **Unbiased** for ∇ of the K-sample bound (not of log p(x)). With L̂ = log (1/K) Σ w_k
    and the leave-one-out bound L̂_{−k} in which w_k is replaced by the geometric mean
    of the others, ŵ_{−k} = exp((1/(K−1)) Σ_{j≠k} log w_j),

    .. math::

      \hat g = \sum_k (\hat L - \hat L_{-k})\,\nabla_\theta \log q_\theta(b_k)
        + \nabla \hat L,

    where the last term (the gradient w.r.t. log_weight's own arguments, e.g. the
    decoder, or θ where log w contains log q_θ) flows by ordinary autodiff. Works for any
    distribution with ``log_prob`` (discrete or not). K = ``num_samples`` ≥ 2.

    Args:
      log_weight: ``log_weight(b, *args)`` → scalar log w(b) for one sample;
        ``(scalar, aux)`` with ``has_aux``.
      dist: ``dist(params)`` returning q_θ (e.g. ``repgrad.Bernoulli(logits=...)``).
      num_samples: K, the number of samples inside the bound (≥ 2).
      has_aux: whether log_weight returns ``(value, aux)``.
      sample_sharding: optional sharding of the sample axis.

    Returns:
      ``fn(params, key, *args) -> (bound, grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> log_w = lambda b: -jnp.sum((b - 0.45) ** 2)
      >>> bound, g = rg.vimco_value_and_grad(log_w, lambda p: rg.Bernoulli(logits=p),
      ...                                    num_samples=4)(jnp.zeros(3), jax.random.key(0))

    References:
      Mnih & Rezende, "Variational Inference for Monte Carlo Objectives", ICML 2016
      (arXiv:1602.06725).
    """
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    s = _vimco_surrogate(log_weight, dist, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding)
    return _core.make_value_and_grad(s, log_weight, has_aux)


def vimco_grad(log_weight, dist, *, num_samples: int = 2, has_aux: bool = False, sample_sharding=None):
    r"""VIMCO gradient of E[log (1/K) Σ_k w(b_k)] (unbiased); see ``vimco_value_and_grad``.

    .. math::

      \hat g = \sum_k (\hat L - \hat L_{-k}) \nabla_\theta \log q_\theta(b_k) + \nabla \hat L.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.vimco_grad(lambda b: -jnp.sum(b), lambda p: rg.Bernoulli(logits=p),
      ...                   num_samples=4)(jnp.zeros(2), jax.random.key(0))

    References:
      Mnih & Rezende, ICML 2016 (arXiv:1602.06725).
    """
    vg = vimco_value_and_grad(log_weight, dist, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding)
    return _core.make_grad(vg, log_weight, has_aux)


def disarm_multisample_value_and_grad(
    log_weight, dist, *, num_samples: int = 2, has_aux: bool = False, sample_sharding=None
):
    r"""Value and multi-sample (local) DisARM gradient of L = E[log (1/K) Σ_k w(b_k)].

    **Unbiased**, for factorized Bernoulli q_θ = Bern(σ(φ)). Draw K antithetic pairs
    (b_k, b̃_k) as in DisARM (2K evaluations of log w). Write F(a_1..K) = log (1/K) Σ
    exp(log w(a_k)). Conditionally on the other samples, DisARM applies to sample k
    alone; as "other samples" we use both b_{−k} and b̃_{−k} (each is i.i.d. q and
    independent of pair k) and average — a leave-one-out over pairs:

    .. math::

      \Delta_k = \tfrac12\big[F(b_k, b_{-k}) - F(\tilde b_k, b_{-k})
        + F(b_k, \tilde b_{-k}) - F(\tilde b_k, \tilde b_{-k})\big],

      \hat g_i = \sum_k \tfrac12 \Delta_k (-1)^{\tilde b_{k,i}}
        \mathbb{1}[b_{k,i} \ne \tilde b_{k,i}] \sigma(|\phi_i|).

    All F's come from the 2K log-weights (O(K²) arithmetic, no extra model calls).
    The value is ½(F(b) + F(b̃)); gradients w.r.t. log_weight's own arguments flow by
    autodiff through it. Derived from the local DisARM construction of Dong et al.
    (2020, §5); check by enumeration is in the tests.

    Args:
      log_weight: ``log_weight(b, *args)`` → scalar log w(b) for one sample.
      dist: ``dist(params)`` returning ``repgrad.Bernoulli(logits=...)``.
      num_samples: K ≥ 2, the number of samples inside the bound.
      has_aux: whether log_weight returns ``(value, aux)`` (aux stacked over 2K).
      sample_sharding: optional sharding of the sample axis.

    Returns:
      ``fn(params, key, *args) -> (value, grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> log_w = lambda b: -jnp.sum((b - 0.45) ** 2)
      >>> v, g = rg.disarm_multisample_value_and_grad(log_w, lambda p: rg.Bernoulli(logits=p),
      ...                                             num_samples=4)(jnp.zeros(3), jax.random.key(0))

    References:
      Dong, Mnih & Tucker, "DisARM: An Antithetic Gradient Estimator for Binary Latent
      Variables", NeurIPS 2020 (arXiv:2006.10680).
    """
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    s = _disarm_multisample_surrogate(
        log_weight, dist, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding
    )
    return _core.make_value_and_grad(s, log_weight, has_aux)


def disarm_multisample_grad(log_weight, dist, *, num_samples: int = 2, has_aux: bool = False, sample_sharding=None):
    r"""Multi-sample DisARM gradient (unbiased); see ``disarm_multisample_value_and_grad``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.disarm_multisample_grad(lambda b: -jnp.sum(b), lambda p: rg.Bernoulli(logits=p),
      ...                                num_samples=4)(jnp.zeros(2), jax.random.key(0))

    References:
      Dong, Mnih & Tucker, NeurIPS 2020 (arXiv:2006.10680).
    """
    vg = disarm_multisample_value_and_grad(
        log_weight, dist, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding
    )
    return _core.make_grad(vg, log_weight, has_aux)
