"""KL divergence from the layers' mean-field Normal posteriors to a prior."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._src import distributions as _d
from ._init import LAYER_PARAMS

__all__ = ["kl_normal", "kl_divergence"]


def kl_normal(q_loc, q_scale, p_loc, p_scale):
    r"""Elementwise KL(N(q_loc, q_scale²) ‖ N(p_loc, p_scale²)).

    .. math::
       \mathrm{KL} = \log\frac{\sigma_p}{\sigma_q} + \frac{\sigma_q^2 + (\mu_q - \mu_p)^2}{2\sigma_p^2} - \frac12 .

    Example:
      >>> import repgrad as rg
      >>> float(rg.nn.kl_normal(0.0, 1.0, 0.0, 1.0))
      0.0
    """
    q_loc, q_scale, p_loc, p_scale = jnp.broadcast_arrays(q_loc, q_scale, p_loc, p_scale)
    ratio = q_scale / p_scale
    return -jnp.log(ratio) + 0.5 * (jnp.square(ratio) + jnp.square((q_loc - p_loc) / p_scale)) - 0.5


def _layers(params):
    leaves = jax.tree_util.tree_leaves(params, is_leaf=lambda p: isinstance(p, LAYER_PARAMS))
    layers = [p for p in leaves if isinstance(p, LAYER_PARAMS)]
    if not layers:
        raise TypeError(
            "kl_divergence found no repgrad.nn.DenseParams/Conv2DParams in params (structure "
            f"{jax.tree_util.tree_structure(params)}). Pass a layer's params or a pytree (list, dict) of them."
        )
    return layers


def _cast_prior(prior, dtype):
    cast = lambda a: jnp.asarray(a, dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a
    return jax.tree_util.tree_map(cast, prior)


def kl_divergence(params, prior=None, *, key=None, num_samples: int = 1, method: str = "auto"):
    r"""KL(q ‖ p) summed over every weight and bias of the Bayesian layers in ``params``.

    q is the mean-field posterior N(loc, softplus(rho)²) of each weight; the prior p is
    applied elementwise to every weight and bias.

    * Normal prior (``None`` means N(0, 1), or a ``repgrad.Normal`` whose parameters
      broadcast to each weight's shape): closed form, see :func:`kl_normal`.
    * Any other prior with ``log_prob`` (e.g. a scale mixture, a Laplace): Monte Carlo,
      :math:`\frac1S\sum_s \log q(w_s) - \log p(w_s)` with reparameterized draws
      :math:`w_s \sim q`, so it is unbiased and differentiable; needs ``key``.

    Args:
      params: a :class:`DenseParams`/:class:`Conv2DParams` or a pytree of them (other
        leaves, e.g. deterministic weights, are ignored).
      prior: ``None`` (standard Normal) or a distribution with ``log_prob``.
      key: PRNG key, required for the Monte Carlo estimate.
      num_samples: draws for the Monte Carlo estimate.
      method: ``"auto"`` (closed form when available), ``"analytic"`` or ``"mc"``.

    Returns:
      A scalar: the total KL in nats.

    Example:
      >>> import jax, repgrad as rg
      >>> layers = [rg.nn.init_dense(jax.random.key(0), 4, 8), rg.nn.init_dense(jax.random.key(1), 8, 2)]
      >>> kl = rg.nn.kl_divergence(layers, rg.Normal(0.0, 1.0))
      >>> kl_mc = rg.nn.kl_divergence(layers, rg.Laplace(0.0, 1.0), key=jax.random.key(2))

    References:
      Blundell et al., "Weight Uncertainty in Neural Networks", ICML 2015 (arXiv 1505.05424).
    """
    if method not in ("auto", "analytic", "mc"):
        raise ValueError(f"method must be 'auto', 'analytic' or 'mc', got {method!r}.")
    layers = _layers(params)
    if prior is None:
        prior = _d.Normal(0.0, 1.0)
    if not hasattr(prior, "log_prob"):
        raise TypeError(f"prior must be a distribution with log_prob (e.g. repgrad.Normal(0., 1.)), got {type(prior).__name__}.")
    analytic = isinstance(prior, _d.Normal)
    if method == "analytic" and not analytic:
        raise ValueError(
            f"no closed-form KL from a Normal posterior to {type(prior).__name__}; use method='auto' or "
            "'mc' with a key for a Monte Carlo estimate."
        )
    use_mc = method == "mc" or not analytic
    if use_mc:
        if key is None:
            raise ValueError(
                f"the KL to a {type(prior).__name__} prior is estimated by Monte Carlo; pass key=jax.random.key(...) "
                "(and optionally num_samples=...)."
            )
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}.")

    total = []
    keys = jax.random.split(key, len(layers)) if use_mc else [None] * len(layers)
    for layer, k in zip(layers, keys, strict=True):
        dtype = jnp.result_type(layer.kernel_loc)
        p = _cast_prior(prior, dtype)
        for loc, scale in ((layer.kernel_loc, layer.kernel_scale), (layer.bias_loc, layer.bias_scale)):
            if not use_mc:
                total.append(jnp.sum(kl_normal(loc, scale, jnp.broadcast_to(p.loc, loc.shape),
                                               jnp.broadcast_to(p.scale, loc.shape))))
            else:
                k, sub = jax.random.split(k)
                q = _d.Normal(loc, scale)
                w = q.sample(sub, (num_samples,))
                log_ratio = q.log_prob(w) - p.log_prob(w)
                total.append(jnp.sum(log_ratio) / num_samples)
    return sum(total[1:], total[0])
