"""Gumbel-Rao: straight-through Gumbel-softmax, Rao-Blackwellized over the Gumbel noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels, path
from ..core.estimator import Estimator, Out
from . import _discrete
from .gumbel_softmax import ZERO_RELAXED
from .relax import _reparameterize

_sg = jax.lax.stop_gradient


def gumbel_rao(*, temperature: float | jax.Array = 1.0, num_gumbels: int = 10) -> Estimator:
    r"""The Gumbel-Rao estimator: straight-through Gumbel-softmax averaged over the noise given the sample.

    **Biased** (a relaxation): its expectation is exactly that of straight-through
    Gumbel-softmax at the same temperature, with lower variance. With z = θ + G (Gumbel noise
    G for Categorical, logistic for Bernoulli), the hard sample D = H(z) (one-hot argmax / 0-1
    threshold) and G̃_1, …, G̃_K drawn from the noise's conditional distribution given D,

    .. math::

      \hat g = \frac{\partial f(D)}{\partial D}\, \frac1K \sum_{k=1}^K
        \frac{\partial}{\partial\theta} \operatorname{softmax}\big((\theta + \tilde G_k)/\tau\big)

    (σ for Bernoulli): the conditional expectation E[ĝ_ST | D] of the straight-through
    estimator ĝ_ST = ∂f/∂D · ∂softmax((θ + G)/τ)/∂θ, estimated with K draws. The noise G̃_k is
    held fixed in the derivative (stop-gradient on the conditional draws, as in the paper's
    derivative ∂/∂θ with G fixed; differentiating through their reparameterization would be
    another, biased, estimator). The value is the plain mean of f(D) over the N samples
    (unbiased); its derivatives in f's own arguments too.

    **Cost:** N evaluations of f and N of its gradient, whatever K; K·N softmaxes. f gets, for
    Bernoulli, D of the logits' shape in {0, 1}; for Categorical, one-hot vectors on the last
    axis; it must be differentiable at them. First derivatives only: a second derivative that
    moves θ raises ``repgrad.DerivativeOrderError``.

    Args:
      temperature: τ > 0; a float or a scalar array.
      num_gumbels: K ≥ 1, the conditional noise draws per sample.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda y: jnp.sum(y * jnp.arange(3.0)) ** 2, lambda p: rg.Categorical(logits=p),
      ...             rg.gumbel_rao(temperature=0.5, num_gumbels=16), num_samples=8)(jnp.zeros(3), jax.random.key(0))

    References:
      Paulus, Maddison & Krause, "Rao-Blackwellizing the Straight-Through Gumbel-Softmax
      Gradient Estimator", ICLR 2021 (arXiv:2010.04838).
    """
    _discrete.check_temperature(temperature)
    if isinstance(num_gumbels, bool) or not isinstance(num_gumbels, int) or num_gumbels < 1:
        raise ValueError(f"num_gumbels must be a positive int, got {num_gumbels!r}; e.g. num_gumbels=10.")

    def surrogate(problem, d, key, state, control):
        n = problem.num_samples
        kind = _discrete.kind_of(d, "gumbel_rao")
        logits = jnp.asarray(d.logits)
        theta = _sg(logits)
        shape = (n,) + logits.shape
        key_u, key_v = jax.random.split(key)
        u = _discrete.uniform(key_u, shape, logits.dtype)
        v = _discrete.uniform(key_v, (num_gumbels,) + shape, logits.dtype)
        th = jnp.broadcast_to(theta, shape)
        if kind == "bernoulli":
            hard = (th + _discrete.logistic(u) > 0).astype(logits.dtype)
        else:
            hard = jax.nn.one_hot(jnp.argmax(th + _discrete.gumbel(u), axis=-1), logits.shape[-1], dtype=logits.dtype)
        # K draws of the noise given the hard sample, at ⊥θ: z̃ − θ is held fixed below.
        noise = jax.vmap(lambda vk: _reparameterize(kind, theta, u, vk, hard)[1] - th)(v)
        # A masked category (logit −inf, never drawn) has noise −inf − (−inf) = NaN, which made the
        # forward value NaN through soft − ⊥soft; any finite noise leaves its softmax weight at 0.
        noise = _sg(jnp.where(jnp.broadcast_to(jnp.isneginf(th), noise.shape), 0.0, noise))
        if kind == "bernoulli":
            soft = jnp.mean(jax.nn.sigmoid((jnp.broadcast_to(logits, noise.shape) + noise) / temperature), axis=0)
        else:
            soft = jnp.mean(jax.nn.softmax((jnp.broadcast_to(logits, noise.shape) + noise) / temperature, axis=-1), axis=0)
        # hard forward (exactly), the averaged soft sample's derivative backward, first order only
        y = hard + kernels.first_order(soft - _sg(soft), "gumbel_rao", watch=problem.args)
        values, aux = problem.evaluate(y)
        values = path.checked_values(problem, d, y, values, "gumbel_rao", ZERO_RELAXED)
        value = jnp.mean(values)
        return Out(value, value, aux)

    return Estimator("gumbel_rao", surrogate, max_order=1, family="discrete", biased=True)
