"""Gumbel-softmax / Concrete relaxations and their straight-through variants."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _core
from . import _discrete_common as _dc

_sg = jax.lax.stop_gradient


def relaxed_sample(d, key, num_samples: int, temperature, straight_through: bool, estimator: str):
    """(N, ...) relaxed samples of a Bernoulli (in (0, 1)) or Categorical (on the simplex)."""
    kind = _dc.kind_of(d, estimator)
    logits = jnp.asarray(d.logits)
    shape = (num_samples,) + logits.shape
    tau = jnp.asarray(temperature, logits.dtype)
    u = _dc.uniform(key, shape, logits.dtype)
    if kind == "bernoulli":
        z = jnp.broadcast_to(logits, shape) + _dc.logistic(u)
        soft = jax.nn.sigmoid(z / tau)
        hard = (z > 0).astype(logits.dtype)
    else:
        z = jnp.broadcast_to(logits, shape) + _dc.gumbel(u)
        soft = jax.nn.softmax(z / tau, axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(z, axis=-1), logits.shape[-1], dtype=logits.dtype)
    if straight_through:
        return hard + (soft - _sg(soft))  # hard forward (exactly), soft backward
    return soft


def _gumbel_softmax_surrogate(
    f, dist, *, num_samples, has_aux, temperature=1.0, straight_through=False, sample_sharding=None
):
    _dc.check_temperature(temperature)
    name = "straight_through_gumbel_softmax" if straight_through else "gumbel_softmax"

    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        x = relaxed_sample(d, key, num_samples, temperature, straight_through, name)
        x = _core.shard_samples(x, sample_sharding)
        values, aux = _core.eval_f(f, x, args, has_aux, num_samples)
        value = jnp.mean(values)
        return value, (value, aux, None)

    return _core.Surrogate(fn)


def _straight_through_surrogate(f, dist, *, num_samples, has_aux, temperature=1.0, sample_sharding=None):
    return _gumbel_softmax_surrogate(
        f, dist, num_samples=num_samples, has_aux=has_aux, temperature=temperature,
        straight_through=True, sample_sharding=sample_sharding,
    )


def gumbel_softmax_value_and_grad(
    f, dist, *, num_samples: int = 1, temperature=1.0, straight_through: bool = False,
    has_aux: bool = False, sample_sharding=None,
):
    r"""Value and Gumbel-softmax / Concrete (relaxed pathwise) gradient.

    **Biased.** f is evaluated at a continuous relaxation of the discrete sample and
    differentiated by the pathwise estimator. For Categorical logits θ (last axis) and
    Gumbel noise g, and for Bernoulli logits with logistic noise l,

    .. math::

      y = \operatorname{softmax}((\theta + g)/\tau), \qquad
      y = \sigma((\theta + l)/\tau),

    and the estimator is (1/N) Σ_n ∇θ f(y_n). It is the exact gradient of
    E[f(relaxed)], not of E[f(discrete)]: the bias vanishes as τ → 0 where f is
    smooth and the relaxed expectation's derivative converges — e.g. for f linear in
    a Bernoulli b, d/dθ E[σ((θ+l)/τ)] = E_s[p_L(−θ − τs)] = σ'(θ) + O(τ²) — while the
    variance grows like 1/τ. The value is E[f(relaxed)] (biased) unless
    ``straight_through``.

    With ``straight_through=True`` (ST Gumbel-softmax) the forward pass uses the hard
    sample (one-hot / 0-1) and the backward pass the soft one's gradient,
    y = hard + soft − ⊥soft: the value is unbiased, the gradient **biased** (even as
    τ → 0, except for f linear).

    Args:
      f: ``f(y, *args)`` returning a scalar for one relaxed sample: for Bernoulli y has
        the logits' shape with values in (0, 1); for Categorical y is a (relaxed)
        one-hot vector on the last axis (not an index). It must accept continuous y.
      dist: ``dist(params)`` returning ``repgrad.Bernoulli`` or ``repgrad.Categorical``.
      num_samples: N.
      temperature: τ > 0; a float or a (traced, learnable) scalar array.
      straight_through: hard forward pass, soft backward pass.
      has_aux: whether f returns ``(value, aux)``.
      sample_sharding: optional sharding of the sample axis.

    Returns:
      ``fn(params, key, *args) -> (value, grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> f = lambda y: jnp.sum(y * jnp.arange(3.0))
      >>> v, g = rg.gumbel_softmax_value_and_grad(f, lambda p: rg.Categorical(logits=p),
      ...     num_samples=64, temperature=0.5)(jnp.zeros(3), jax.random.key(0))

    References:
      Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax", ICLR 2017
      (arXiv:1611.01144).
      Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017 (arXiv:1611.00712).
      Bengio, Léonard & Courville, "Estimating or Propagating Gradients Through
      Stochastic Neurons", 2013 (arXiv:1308.3432), for straight-through.
    """
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    s = _gumbel_softmax_surrogate(
        f, dist, num_samples=num_samples, has_aux=has_aux, temperature=temperature,
        straight_through=straight_through, sample_sharding=sample_sharding,
    )
    return _core.make_value_and_grad(s, f, has_aux)


def gumbel_softmax_grad(
    f, dist, *, num_samples: int = 1, temperature=1.0, straight_through: bool = False,
    has_aux: bool = False, sample_sharding=None,
):
    r"""Gumbel-softmax / Concrete gradient (biased); see ``gumbel_softmax_value_and_grad``.

    .. math::

      \hat g = \frac1N \sum_n \nabla_\theta f(\operatorname{softmax}((\theta + g_n)/\tau)).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.gumbel_softmax_grad(lambda y: jnp.sum(y), lambda p: rg.Bernoulli(logits=p),
      ...     num_samples=256, temperature=0.1)(jnp.zeros(2), jax.random.key(0))  # ≈ 0.25

    References:
      Jang et al. 2017 (arXiv:1611.01144); Maddison et al. 2017 (arXiv:1611.00712).
    """
    vg = gumbel_softmax_value_and_grad(
        f, dist, num_samples=num_samples, temperature=temperature, straight_through=straight_through,
        has_aux=has_aux, sample_sharding=sample_sharding,
    )
    return _core.make_grad(vg, f, has_aux)
