"""Exact expectations and gradients by enumerating a small discrete support."""

from __future__ import annotations

import math

import jax.numpy as jnp

from . import _core
from . import _discrete_common as _dc

MAX_CONFIGURATIONS = 2**12


def _support(d, max_configurations):
    """All configurations of ``d``'s sample, stacked: (M, *sample_shape)."""
    kind = _dc.kind_of(d, "enumeration")
    if kind == "bernoulli":
        logits = jnp.asarray(d.logits)
        size, base, shape, dtype = logits.size, 2, logits.shape, logits.dtype
    else:
        logits = jnp.asarray(d.logits)
        size, base, shape, dtype = math.prod(logits.shape[:-1]), logits.shape[-1], logits.shape[:-1], jnp.int32
    count = base**size
    if count > max_configurations:
        raise ValueError(
            f"enumeration would evaluate f on {base}^{size} = {count} configurations, more than "
            f"max_configurations={max_configurations}. Raise max_configurations if that is "
            "affordable, or use a Monte Carlo estimator (e.g. repgrad.disarm_grad, score_grad)."
        )
    idx = jnp.arange(count, dtype=jnp.int32)[:, None]
    digits = (idx // (base ** jnp.arange(size, dtype=jnp.int32))[None, :]) % base
    return jnp.reshape(digits, (count,) + shape).astype(dtype), count


def _enumeration_surrogate(f, dist, *, num_samples=1, has_aux, max_configurations=MAX_CONFIGURATIONS):
    del num_samples  # exact: no sampling

    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        x, count = _support(d, max_configurations)
        values, aux = _core.eval_f(f, x, args, has_aux, count)
        log_p = _core.joint_log_prob(d, x, count)
        value = jnp.sum(jnp.exp(log_p).astype(values.dtype) * values)
        return value, (value, aux, None)

    return _core.Surrogate(fn)


def enumeration_value_and_grad(f, dist, *, has_aux: bool = False, max_configurations: int = MAX_CONFIGURATIONS):
    r"""Exact E_{p_θ}[f] and its gradient, by summing over every configuration.

    .. math::

      \mathbb{E}_{p_\theta}[f(x)] = \sum_{x} p_\theta(x) f(x), \qquad
      \nabla_\theta \mathbb{E} = \sum_x \nabla_\theta p_\theta(x)\, f(x)
        + p_\theta(x) \nabla_\theta f(x).

    **Exact** (no bias, no variance) for factorized Bernoulli (2^d configurations, f
    gets floats 0./1.) and Categorical (C^B configurations for batch size B, f gets
    int32 indices like ``Categorical.sample``) distributions, as long as the support
    has at most ``max_configurations`` points (default 2^12). Gradients w.r.t. f's
    own arguments are exact too. The key is accepted for a uniform interface and ignored.

    Args:
      f: ``f(x, *args)`` returning a scalar per configuration; ``(scalar, aux)`` with
        ``has_aux`` (aux stacked over the M configurations, in lexicographic order with
        the first element varying fastest).
      dist: ``dist(params)`` returning ``repgrad.Bernoulli`` or ``repgrad.Categorical``.
      has_aux: whether f returns ``(value, aux)``.
      max_configurations: refuse larger supports (``ValueError``) rather than run out
        of memory.

    Returns:
      ``fn(params, key, *args) -> (value, grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> f = lambda b: jnp.sum((b - 0.45) ** 2)
      >>> v, g = rg.enumeration_value_and_grad(f, lambda p: rg.Bernoulli(logits=p))(
      ...     jnp.zeros(3), jax.random.key(0))  # g = σ'(0)·(1 − 2·0.45) = 0.025 each

    References:
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020
      (arXiv:1906.10652), §2 (the expectation as a sum for discrete measures).
    """
    has_aux = _core.check_has_aux(has_aux)
    s = _enumeration_surrogate(f, dist, has_aux=has_aux, max_configurations=max_configurations)
    return _core.make_value_and_grad(s, f, has_aux)


def enumeration_grad(f, dist, *, has_aux: bool = False, max_configurations: int = MAX_CONFIGURATIONS):
    r"""Exact gradient ∇θ Σ_x p_θ(x) f(x) by enumeration; see ``enumeration_value_and_grad``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.enumeration_grad(lambda k: (k == 2).astype(jnp.float32),
      ...                         lambda p: rg.Categorical(logits=p))(jnp.zeros(3), jax.random.key(0))

    References:
      Mohamed et al., JMLR 2020 (arXiv:1906.10652).
    """
    vg = enumeration_value_and_grad(f, dist, has_aux=has_aux, max_configurations=max_configurations)
    return _core.make_grad(vg, f, has_aux)
