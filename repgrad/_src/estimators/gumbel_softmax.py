"""Gumbel-softmax / Concrete relaxations and their straight-through variant."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels, path
from ..core.estimator import Estimator, Out
from . import _discrete

_sg = jax.lax.stop_gradient

ZERO_RELAXED = (
    "f is evaluated at relaxed samples and must be differentiable there; use an unbiased discrete "
    "estimator instead (rg.disarm(), rg.score(baseline='loo'), rg.enumeration())."
)


def relaxed_sample(d, key, num_samples: int, temperature, straight_through: bool, estimator: str, watch=()):
    """(N, ...) relaxed samples of a Bernoulli (in (0, 1)) or Categorical (on the simplex).

    ``watch``: f's own arguments; with ``straight_through`` a second derivative that moves
    them together with the logits (a mixed derivative of the biased gradient) is refused.
    """
    kind = _discrete.kind_of(d, estimator)
    logits = jnp.asarray(d.logits)
    shape = (num_samples,) + logits.shape
    tau = jnp.asarray(temperature, logits.dtype)
    u = _discrete.uniform(key, shape, logits.dtype)
    if kind == "bernoulli":
        z = jnp.broadcast_to(logits, shape) + _discrete.logistic(u)
        soft = jax.nn.sigmoid(z / tau)
        hard = (z > 0).astype(logits.dtype)
    else:
        z = jnp.broadcast_to(logits, shape) + _discrete.gumbel(u)
        soft = jax.nn.softmax(z / tau, axis=-1)
        hard = jax.nn.one_hot(jnp.argmax(z, axis=-1), logits.shape[-1], dtype=logits.dtype)
    if straight_through:  # hard forward (exactly), soft backward; no objective has its higher derivatives
        return hard + kernels.first_order(soft - _sg(soft), "straight_through_gumbel_softmax", watch=watch)
    return soft


def gumbel_softmax(*, temperature: float | jax.Array = 1.0, straight_through: bool = False) -> Estimator:
    r"""The Gumbel-softmax / Concrete (relaxed pathwise) estimator.

    **Biased.** f is evaluated at a continuous relaxation of the discrete sample and
    differentiated by the pathwise estimator. For Categorical logits θ (last axis) and
    Gumbel noise g, and for Bernoulli logits with logistic noise l,

    .. math::

      y = \operatorname{softmax}((\theta + g)/\tau), \qquad
      y = \sigma((\theta + l)/\tau),

    and the estimator is (1/N) Σ_n ∇θ f(y_n). It is the exact gradient of E[f(relaxed)],
    not of E[f(discrete)]: the bias vanishes as τ → 0 where f is smooth — e.g. for f
    linear in a Bernoulli b, d/dθ E[σ((θ+l)/τ)] = σ'(θ) + O(τ²) — while the variance grows
    like 1/τ. The value is E[f(relaxed)] (biased) unless ``straight_through``. Higher
    derivatives are those of the relaxed objective E[f(relaxed)], biased for E[f(discrete)]
    in the same way as the gradient (and with more variance as τ → 0).

    With ``straight_through=True`` (ST Gumbel-softmax) the forward pass uses the hard sample
    (one-hot / 0-1) and the backward pass the soft one's gradient, y = hard + soft − ⊥soft:
    the value is unbiased, the gradient **biased** (even as τ → 0, except for f linear), and
    it is a first-order estimator: a second derivative raises ``repgrad.DerivativeOrderError``.

    f gets, for Bernoulli, y of the logits' shape in (0, 1); for Categorical, a (relaxed)
    one-hot vector on the last axis (not an index). It must accept continuous y.

    Args:
      temperature: τ > 0; a float or a (traced, learnable) scalar array.
      straight_through: hard forward pass, soft backward pass.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda y: jnp.sum(y), lambda p: rg.Bernoulli(logits=p),
      ...             rg.gumbel_softmax(temperature=0.1), num_samples=256)(jnp.zeros(2), jax.random.key(0))

    References:
      Jang, Gu & Poole, "Categorical Reparameterization with Gumbel-Softmax", ICLR 2017
      (arXiv:1611.01144).
      Maddison, Mnih & Teh, "The Concrete Distribution", ICLR 2017 (arXiv:1611.00712).
      Bengio, Léonard & Courville, "Estimating or Propagating Gradients Through Stochastic
      Neurons", 2013 (arXiv:1308.3432), for straight-through.
    """
    _discrete.check_temperature(temperature)
    name = "straight_through_gumbel_softmax" if straight_through else "gumbel_softmax"
    max_order = 1 if straight_through else None

    def surrogate(problem, d, key, state, control):
        x = relaxed_sample(d, key, problem.num_samples, temperature, straight_through, name, watch=problem.args)
        values, aux = problem.evaluate(x)
        values = path.checked_values(problem, d, x, values, name, ZERO_RELAXED)
        value = jnp.mean(values)
        return Out(value, value, aux)

    return Estimator(name, surrogate, max_order=max_order, family="discrete", biased=True)


def straight_through(*, temperature: float | jax.Array = 1.0) -> Estimator:
    r"""Straight-through Gumbel-softmax: ``gumbel_softmax(temperature=..., straight_through=True)``.

    y = hard + soft − ⊥soft: the forward pass sees the hard (one-hot / 0-1) sample, the
    backward pass the relaxed one's gradient. **Biased** gradient (even as τ → 0, except for
    f linear); unbiased value.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda y: jnp.sum(y * jnp.arange(3.0)), lambda p: rg.Categorical(logits=p),
      ...             rg.straight_through(temperature=0.5), num_samples=64)(jnp.zeros(3), jax.random.key(0))

    References:
      Bengio, Léonard & Courville, "Estimating or Propagating Gradients Through Stochastic
      Neurons", 2013 (arXiv:1308.3432); Jang, Gu & Poole, ICLR 2017 (arXiv:1611.01144).
    """
    return gumbel_softmax(temperature=temperature, straight_through=True)
