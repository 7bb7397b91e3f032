"""Closed-form KL divergences between two distributions, where one is known."""

from __future__ import annotations

import jax.numpy as jnp

from .base import Distribution
from .normal import MultivariateNormalDiag, MultivariateNormalTri, Normal


def _normal(q_loc, q_scale, p_loc, p_scale):
    ratio = q_scale / p_scale
    return -jnp.log(ratio) + 0.5 * (jnp.square(ratio) + jnp.square((q_loc - p_loc) / p_scale)) - 0.5


def _tri(d):
    if isinstance(d, MultivariateNormalTri):
        return d.loc, d.scale_tri
    scale = d.scale_diag
    return d.loc, scale[..., :, None] * jnp.eye(scale.shape[-1], dtype=scale.dtype)


def _mvn(q, p):
    """KL(N(μq, Lq Lqᵀ) ‖ N(μp, Lp Lpᵀ)) = ½[tr(Σp⁻¹Σq) + ‖Lp⁻¹(μp − μq)‖² − D] + log|Lp| − log|Lq|."""
    import jax.scipy.linalg as sl

    mq, lq = _tri(q)
    mp, lp = _tri(p)
    batch = jnp.broadcast_shapes(lq.shape[:-2], lp.shape[:-2], mq.shape[:-1], mp.shape[:-1])
    dim = mq.shape[-1]
    lq, lp = jnp.broadcast_to(lq, batch + (dim, dim)), jnp.broadcast_to(lp, batch + (dim, dim))
    diff = jnp.broadcast_to(mp, batch + (dim,)) - jnp.broadcast_to(mq, batch + (dim,))
    m = sl.solve_triangular(lp, lq, lower=True)
    z = sl.solve_triangular(lp, diff[..., None], lower=True)[..., 0]
    log_det = lambda tri: jnp.sum(jnp.log(jnp.abs(jnp.diagonal(tri, axis1=-2, axis2=-1))), axis=-1)
    return 0.5 * (jnp.sum(m * m, axis=(-2, -1)) + jnp.sum(z * z, axis=-1) - dim) + log_det(lp) - log_det(lq)


def closed_form_kl(q, p):
    """KL(q ‖ p) summed over the batch, or ``None`` when no closed form is known here.

    repgrad's Normal/Normal, MultivariateNormalDiag/Tri pairs; peers' (distrax, TFP)
    ``q.kl_divergence(p)`` when they define one.
    """
    if isinstance(q, Normal) and isinstance(p, Normal):
        return jnp.sum(_normal(q.loc, q.scale, p.loc, p.scale))
    mvn = (MultivariateNormalDiag, MultivariateNormalTri)
    if isinstance(q, mvn) and isinstance(p, mvn):
        if isinstance(q, MultivariateNormalDiag) and isinstance(p, MultivariateNormalDiag):
            return jnp.sum(_normal(q.loc, q.scale_diag, p.loc, p.scale_diag))
        return jnp.sum(_mvn(q, p))
    if not isinstance(q, Distribution) and hasattr(q, "kl_divergence"):
        try:
            return jnp.sum(q.kl_divergence(p))
        except NotImplementedError:
            return None
    return None
