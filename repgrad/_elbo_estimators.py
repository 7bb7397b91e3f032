"""ELBO and IWAE bounds with pathwise, sticking-the-landing and DReG gradients."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from . import _core

_sg = jax.lax.stop_gradient

_ELBO_ESTIMATORS = ("pathwise", "stl")
_IWAE_ESTIMATORS = ("pathwise", "stl", "dreg")


def _check_estimator(estimator, allowed, what):
    if estimator not in allowed:
        raise ValueError(f"{what} estimator must be one of {allowed}, got {estimator!r}.")


def _log_weights(log_joint, dist, params, key, args, num_draws, pathwise):
    """Reparameterized z and the log-weights needed by every estimator, each (num_draws,).

    Returns ``(lw_full, None, None)`` if ``pathwise`` else ``(None, lw_theta, lw_stl)``:
      lw_full: log p(z, ·) − log q_φ(z), everything differentiable (plain pathwise);
      lw_theta: differentiable only in f's args (z and q stop-gradient);
      lw_stl: differentiable in φ only through z (q's parameters stop-gradient, args too).
    """
    q = _core.resolve_dist(dist, params)
    z = _core.sample_for_pathwise(q, key, num_draws)
    q_stop = _core.resolve_dist(dist, jax.tree_util.tree_map(_sg, params))
    sg_args = _sg(args)

    def log_joint_at(a):
        out = jax.vmap(lambda zi: log_joint(zi, *a))(z)
        out = jnp.asarray(out)
        if out.shape != (num_draws,):
            raise TypeError(
                f"log_joint must return a scalar log p(x, z) for one z, got shape {out.shape[1:]}; "
                "sum over the latent's coordinates and the data inside it."
            )
        return out

    lq = _core.joint_log_prob(q, z, num_draws)
    if pathwise:
        lj = log_joint_at(args)
        return lj - lq.astype(lj.dtype), None, None
    lj_stl = log_joint_at(sg_args)  # checks log_joint's output shape
    lw_stl = lj_stl - _core.joint_log_prob(q_stop, z, num_draws).astype(lj_stl.dtype)
    lw_theta = jax.vmap(lambda zi: log_joint(zi, *args))(_sg(z)) - _sg(lq).astype(lj_stl.dtype)
    return None, lw_theta, lw_stl


def elbo(log_joint, dist, *, num_samples: int = 1, estimator: str = "pathwise"):
    r"""The evidence lower bound as a surrogate: value = ELBO estimate, gradient = estimator.

    .. math::

      \mathcal{L}(\phi, \theta) = \mathbb{E}_{q_\phi(z)}[\log p_\theta(x, z) - \log q_\phi(z)]
        \approx \frac{1}{N}\sum_n \log p_\theta(x, z_n) - \log q_\phi(z_n),
        \quad z_n = g(\phi, \epsilon_n).

    ``estimator="pathwise"`` differentiates everything. ``"stl"`` (sticking the
    landing) drops the score term ∇φ log q_φ(z)|_{z fixed}, whose expectation is zero:
    the gradient is (1/N) Σ ∇z[log p(x, z) − log q_φ(z)]|_{z_n} ∂z_n/∂φ, unbiased, and
    exactly zero when q equals the posterior. Gradients w.r.t. the model's own
    parameters (log_joint's extra args) are the usual (1/N) Σ ∇θ log p_θ(x, z_n).

    The bound is to be *maximized*; minimize ``-elbo(...)`` with a descent optimizer.

    Args:
      log_joint: ``log_joint(z, *args)`` returning the scalar log p(x, z) for one
        latent z (the data and model parameters go in args).
      dist: ``dist(params)`` returning a reparameterizable q (repgrad family or a
        distrax/TFP/numpyro one).
      num_samples: N (keyword-only, static).
      estimator: ``"pathwise"`` or ``"stl"``.

    Returns:
      ``loss(params, key, *args)``: a scalar whose value is the ELBO estimate and whose
      ``jax.grad`` is the chosen estimator.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> log_joint = lambda z, x: jnp.sum(-0.5 * z**2 - 0.5 * (x - z) ** 2)
      >>> bound = rg.elbo(log_joint, lambda p: rg.Normal(p["loc"], p["scale"]),
      ...                 num_samples=8, estimator="stl")
      >>> params = {"loc": jnp.zeros(2), "scale": jnp.ones(2)}
      >>> g = jax.grad(bound)(params, jax.random.key(0), jnp.ones(2))

    References:
      Roeder, Wu & Duvenaud, "Sticking the Landing: Simple, Lower-Variance Gradient
      Estimators for Variational Inference", NeurIPS 2017 (arXiv:1703.09194).
    """
    _check_estimator(estimator, _ELBO_ESTIMATORS, "elbo")
    num_samples = _core.check_num_samples(num_samples)

    @functools.wraps(log_joint)
    def loss(params, key, *args):
        _core.check_key(key)
        pathwise = estimator == "pathwise"
        lw_full, lw_theta, lw_stl = _log_weights(log_joint, dist, params, key, args, num_samples, pathwise)
        if pathwise:
            return jnp.mean(lw_full)
        # STL: φ only through z (q's parameters stopped); θ as usual. Value = mean(lw).
        return jnp.mean(lw_theta) + jnp.mean(lw_stl - _sg(lw_stl))

    return loss


def iwae_bound(log_joint, dist, *, num_particles: int, num_samples: int = 1, estimator: str = "pathwise"):
    r"""The importance-weighted bound (IWAE) as a surrogate, with DReG or STL gradients.

    .. math::

      \mathcal{L}_K = \mathbb{E}\Big[\log \frac1K \sum_{k=1}^K w_k\Big],\quad
      w_k = \frac{p_\theta(x, z_k)}{q_\phi(z_k)},\ z_k = g(\phi, \epsilon_k),

    averaged over ``num_samples`` independent sets of K = ``num_particles`` particles.
    With normalized weights w̃_k = w_k / Σ_j w_j, the encoder gradients are

    - ``"pathwise"``: ∇φ log (1/K) Σ w_k, by autodiff (its SNR vanishes as K grows);
    - ``"dreg"`` (doubly reparameterized): Σ_k w̃_k² ∂log w_k/∂z_k · ∂z_k/∂φ, unbiased
      for the same gradient, and with lower variance for large K;
    - ``"stl"``: Σ_k w̃_k ∂log w_k/∂z_k · ∂z_k/∂φ — biased for K > 1 (Tucker et al. 2018),
      provided for comparison.

    The model gradient (log_joint's args) is always Σ_k w̃_k ∇θ log p_θ(x, z_k). The
    value is the bound estimate (to be maximized).

    Args:
      log_joint: ``log_joint(z, *args)``: scalar log p(x, z) for one latent z.
      dist: ``dist(params)`` returning a reparameterizable q.
      num_particles: K ≥ 1 (static).
      num_samples: number of independent K-particle bounds averaged (static).
      estimator: ``"pathwise"``, ``"dreg"`` or ``"stl"``.

    Returns:
      ``loss(params, key, *args)``: scalar bound estimate; ``jax.grad`` is the estimator.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> log_joint = lambda z, x: jnp.sum(-0.5 * z**2 - 0.5 * (x - z) ** 2)
      >>> bound = rg.iwae_bound(log_joint, lambda p: rg.Normal(p["loc"], p["scale"]),
      ...                       num_particles=16, estimator="dreg")
      >>> params = {"loc": jnp.zeros(2), "scale": jnp.ones(2)}
      >>> g = jax.grad(bound)(params, jax.random.key(0), jnp.ones(2))

    References:
      Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
      Tucker, Lawson, Gu & Maddison, "Doubly Reparameterized Gradient Estimators for
      Monte Carlo Objectives", ICLR 2019 (arXiv:1810.04152).
    """
    _check_estimator(estimator, _IWAE_ESTIMATORS, "iwae_bound")
    if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
        raise ValueError(
            f"num_particles must be a Python int >= 1 (it sets array shapes), got {num_particles!r}; "
            "e.g. num_particles=16."
        )
    num_samples = _core.check_num_samples(num_samples)
    total = num_particles * num_samples

    @functools.wraps(log_joint)
    def loss(params, key, *args):
        _core.check_key(key)
        pathwise = estimator == "pathwise"
        lws = _log_weights(log_joint, dist, params, key, args, total, pathwise)
        shape = (num_samples, num_particles)
        lw_full, lw_theta, lw_stl = (None if a is None else a.reshape(shape) for a in lws)
        log_k = jnp.log(jnp.asarray(num_particles, (lw_full if pathwise else lw_theta).dtype))
        if pathwise:
            return jnp.mean(logsumexp(lw_full, axis=1) - log_k)
        bound = jnp.mean(logsumexp(lw_theta, axis=1) - log_k)  # value; model gradient
        w_norm = _sg(jax.nn.softmax(lw_theta, axis=1))
        coeff = w_norm * w_norm if estimator == "dreg" else w_norm
        encoder = jnp.sum(coeff * (lw_stl - _sg(lw_stl)), axis=1)
        return bound + jnp.mean(encoder)

    return loss
