"""Exact expectations and gradients by enumerating a small discrete support."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..core import protocol
from ..core.estimator import Estimator, Out
from . import _discrete

MAX_CONFIGURATIONS = 2**12


def _support(d, max_configurations):
    """All configurations of ``d``'s sample, stacked: (M, *sample_shape)."""
    kind = _discrete.kind_of(d, "enumeration")
    logits = jnp.asarray(d.logits)
    if kind == "bernoulli":
        size, base, shape, dtype = logits.size, 2, logits.shape, logits.dtype
    else:
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


def _in_support(d, x):
    """``x`` with every coordinate of probability exactly 0 (a Categorical's masked category,
    logit −inf) replaced by the most probable category there.

    Such configurations keep their weight p(x) = exp(−inf) = 0, which is exact at every
    derivative order; f is evaluated at an in-support point instead, so an f that is ±inf or
    NaN only where it is never drawn gives 0, not 0 · inf = NaN, in the value and in every
    derivative (w.r.t. the params and f's own arguments). A Bernoulli's logits are finite.
    """
    if _discrete.kind_of(d, "enumeration") != "categorical":
        return x
    logits = jax.lax.stop_gradient(jnp.asarray(d.logits))
    masked = jnp.take_along_axis(
        jnp.broadcast_to(logits, x.shape + logits.shape[-1:]), x[..., None], axis=-1
    )[..., 0] == -jnp.inf
    mode = jnp.argmax(logits, axis=-1).astype(x.dtype)
    return jnp.where(masked, jnp.broadcast_to(mode, x.shape), x)


def enumeration(*, max_configurations: int = MAX_CONFIGURATIONS) -> Estimator:
    r"""Exact E_{p_θ}[f] and its derivatives, by summing over every configuration.

    .. math::

      \mathbb{E}_{p_\theta}[f(x)] = \sum_{x} p_\theta(x) f(x), \qquad
      \nabla_\theta \mathbb{E} = \sum_x \nabla_\theta p_\theta(x)\, f(x)
        + p_\theta(x) \nabla_\theta f(x).

    **Exact** at every derivative order (no bias, no variance) for factorized Bernoulli
    (2^d configurations, f gets floats 0./1.) and Categorical (C^B configurations for batch
    size B, f gets int32 indices like ``Categorical.sample``) distributions, as long as the
    support has at most ``max_configurations`` points (default 2^12). Derivatives w.r.t.
    f's own arguments are exact too. ``num_samples`` and the key are ignored; aux is stacked
    over the M configurations in lexicographic order, the first element varying fastest.
    With ``f_key=True`` (f with noise of its own) each of the ``num_samples`` keys evaluates
    every configuration and the exact sums are averaged: exact in x, Monte Carlo in f's
    noise, N·M evaluations (aux stacked key by key).
    A configuration with a masked category (logit −inf: probability exactly 0) has weight
    exactly 0, and f (and aux) is evaluated with the most probable category in its place, so
    an f that is infinite only where it is never drawn stays exact.

    Args:
      max_configurations: refuse larger supports (``ValueError``) rather than run out of memory.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> v, g = rg.value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), lambda p: rg.Bernoulli(logits=p),
      ...                          rg.enumeration())(jnp.zeros(3), jax.random.key(0))  # g = 0.025 each

    References:
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020
      (arXiv:1906.10652), §2 (the expectation as a sum for discrete measures).
    """

    def surrogate(problem, d, key, state, control):
        x, count = _support(d, max_configurations)
        log_p = protocol.joint_log_prob(d, x, count)
        x = _in_support(d, x)
        if problem.keys is None:
            values, aux = problem.evaluate(x, count)
            value = jnp.sum(jnp.exp(log_p).astype(values.dtype) * values)
            return Out(value, value, aux)
        # f_key: f has noise of its own. Each of the N keys evaluates every configuration (common
        # random numbers across configurations), and the N exact sums over x are averaged.
        n = problem.num_samples
        stacked = jax.tree_util.tree_map(lambda a: jnp.concatenate([a] * n), x)
        values, aux = problem.evaluate(stacked, n * count, jnp.repeat(problem.keys, count))
        per_key = jnp.sum(jnp.exp(log_p).astype(values.dtype)[None, :] * values.reshape(n, count), axis=1)
        value = jnp.mean(per_key)
        return Out(value, value, aux)

    return Estimator("enumeration", surrogate, family="discrete")
