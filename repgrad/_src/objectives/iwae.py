"""The importance-weighted bound (IWAE) as a surrogate, with pathwise, STL or DReG gradients."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from ..core import checks, kernels, sharding
from .elbo import check_choice, keyed, pathwise_terms, stl_terms

_sg = jax.lax.stop_gradient

ESTIMATORS = ("pathwise", "stl", "dreg")


def iwae_bound(
    log_joint: Callable[..., Any],
    dist: Callable[[Any], Any],
    *,
    num_samples: int | None = None,
    num_bounds: int = 1,
    estimator: str = "pathwise",
    has_aux: bool = False,
    sample_sharding: jax.sharding.Sharding | None = None,
    num_particles: int | None = None,
    f_key: bool = False,
) -> Callable[..., Any]:
    r"""The importance-weighted bound (IWAE) as a surrogate, with DReG or STL gradients.

    .. math::

      \mathcal{L}_K = \mathbb{E}\Big[\log \frac1K \sum_{k=1}^K w_k\Big],\quad
      w_k = \frac{p_\theta(x, z_k)}{q_\phi(z_k)},\ z_k = g(\phi, \epsilon_k),

    with K = ``num_samples``, averaged over ``num_bounds`` independent K-sample bounds. With
    normalized weights w̃_k = w_k / Σ_j w_j, the encoder gradients are

    - ``"pathwise"``: ∇φ log (1/K) Σ w_k, by autodiff (its SNR vanishes as K grows);
      unbiased at every order;
    - ``"dreg"`` (doubly reparameterized): Σ_k w̃_k² ∂log w_k/∂z_k · ∂z_k/∂φ, unbiased for the
      same gradient, and with lower variance for large K (first derivatives only);
    - ``"stl"``: Σ_k w̃_k ∂log w_k/∂z_k · ∂z_k/∂φ — biased for K > 1 (Tucker et al. 2018),
      provided for comparison (first derivatives only).

    The model gradient (log_joint's args) is always Σ_k w̃_k ∇θ log p_θ(x, z_k). The value
    is the bound estimate (to be maximized).

    Args:
      log_joint: ``log_joint(z, *args)``: scalar log p(x, z) for one latent z (``(scalar,
        aux)`` with ``has_aux``; aux stacked over the ``num_bounds·K`` latents).
      dist: ``dist(params)`` returning a reparameterizable q.
      num_samples: K ≥ 1, the samples inside one bound (static).
      num_bounds: independent bounds averaged (static).
      estimator: ``"pathwise"``, ``"dreg"`` or ``"stl"``.
      has_aux: whether log_joint returns ``(value, aux)``.
      sample_sharding: optional ``jax.sharding.Sharding`` for the (num_bounds·K) sample axis.
      num_particles: deprecated name of ``num_samples``; when given, ``num_samples`` keeps its
        former meaning, the number of bounds.
      f_key: call ``log_joint(z, key, *args)`` with a key of its own for each of the
        ``num_bounds·K`` latents, split from the call's key.

    Returns:
      ``loss(params, key, *args)``: scalar bound estimate; ``jax.grad`` is the estimator.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> log_joint = lambda z, x: jnp.sum(-0.5 * z**2 - 0.5 * (x - z) ** 2)
      >>> bound = rg.iwae_bound(log_joint, lambda p: rg.Normal(p["loc"], p["scale"]),
      ...                       num_samples=16, estimator="dreg")
      >>> params = {"loc": jnp.zeros(2), "scale": jnp.ones(2)}
      >>> g = jax.grad(bound)(params, jax.random.key(0), jnp.ones(2))

    References:
      Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
      Tucker, Lawson, Gu & Maddison, "Doubly Reparameterized Gradient Estimators for Monte
      Carlo Objectives", ICLR 2019 (arXiv:1810.04152).
    """
    if num_particles is not None:
        warnings.warn(
            "iwae_bound(num_particles=K) is deprecated: write num_samples=K (and num_bounds= for the "
            "number of independent bounds, which num_samples meant before).",
            DeprecationWarning,
            stacklevel=2,
        )
        num_samples, num_bounds = num_particles, 1 if num_samples is None else num_samples
    if num_samples is None:
        raise TypeError("iwae_bound needs num_samples=K, the number of samples inside the bound; e.g. 16.")
    check_choice(estimator, ESTIMATORS, "iwae_bound estimator")
    k = checks.check_num_samples(num_samples)
    num_bounds = checks.check_num_samples(num_bounds, why=" (num_bounds)")
    has_aux = checks.check_has_aux(has_aux)
    f_key = checks.check_flag(f_key, "f_key")
    sample_sharding = sharding.check_sharding(sample_sharding)

    def loss(params, key, *args):
        checks.check_key(key)
        joint, keys = keyed(log_joint, f_key, key, num_bounds * k)
        options = dict(has_aux=has_aux, sample_sharding=sample_sharding, keys=keys)
        shape = (num_bounds, k)
        if estimator == "pathwise":
            lj, lq, aux = pathwise_terms(joint, dist, params, key, args, num_bounds * k, **options)
            lw = (lj - lq).reshape(shape)
            value = jnp.mean(logsumexp(lw, axis=1) - jnp.log(jnp.asarray(k, lw.dtype)))
        else:
            lw_theta, lw_stl, aux = stl_terms(joint, dist, params, key, args, num_bounds * k, **options)
            lw_theta = lw_theta.reshape(shape)
            bound = jnp.mean(logsumexp(lw_theta, axis=1) - jnp.log(jnp.asarray(k, lw_theta.dtype)))  # value; model gradient
            w_norm = _sg(jax.nn.softmax(lw_theta, axis=1))
            coeff = (w_norm * w_norm if estimator == "dreg" else w_norm) / num_bounds
            name = f"iwae_bound(estimator={estimator!r})"
            value = bound + kernels.pullback([(lw_stl, coeff.reshape(-1))], name, bound.dtype, watch=(lw_theta,))
        return (value, aux) if has_aux else value

    loss.__name__ = loss.__qualname__ = f"iwae_bound_{getattr(log_joint, '__name__', 'log_joint')}"
    return loss
