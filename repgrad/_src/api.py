"""The public entry points ``grad``, ``value_and_grad`` and ``expectation``: an estimator
value (or a registered name with options) and f, turned into a ``jax.grad``-style transform."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from . import registry
from .core import transforms
from .core.estimator import Estimator


def value_and_grad(
    f: Callable[..., Any],
    dist: Callable[[Any], Any],
    estimator: Estimator | str = "pathwise",
    *,
    num_samples: int = 1,
    has_aux: bool = False,
    sample_sharding: jax.sharding.Sharding | None = None,
    f_key: bool = False,
    **options: Any,
) -> Callable[..., Any]:
    r"""Monte Carlo value and gradient of E_{x∼dist(params)}[f(x, *args)] by ``estimator``.

    .. math::

      \hat L = \frac1N \sum_{n=1}^N f(x_n), \qquad \hat g \approx \nabla_\theta \mathbb{E}_{p_\theta}[f],

    with ĝ the chosen estimator's (see each estimator's docstring for its formula, bias and
    reference). Results are means over ``num_samples`` per-sample estimates; no per-sample
    Jacobians are formed.

    Args:
      f: ``f(x, *args)`` returning a scalar for one sample ``x`` (``(scalar, aux)`` with
        ``has_aux``); the transform vmaps it over samples.
      dist: ``dist(params)`` returning a distribution: a repgrad family, or a
        distrax/TFP/numpyro object.
      estimator: an estimator value (``rg.pathwise()``, ``rg.score(baseline="loo")``,
        ``rg.measure_valued()``, ``rg.disarm()``, ...) or a registered name
        (``repgrad.ESTIMATORS``, e.g. ``"score"`` or the spec ``"score:loo"``) whose options
        go in ``**options``.
      num_samples: N (keyword-only, static).
      has_aux: whether f returns ``(value, aux)``; aux is stacked over samples.
      sample_sharding: optional ``jax.sharding.Sharding`` for the sample axis, e.g.
        ``NamedSharding(mesh, PartitionSpec("samples"))``.
      f_key: f has randomness of its own (a noisy reward, a simulator, dropout): it is called as
        ``f(x, key_n, *args)`` with an independent key per sample, split from the call's key
        (same key, same result). Every point an estimator evaluates for sample n (a coupled
        pair, an antithetic twin, a substituted coordinate) uses sample n's key: common random
        numbers keep those estimators' variance low. The estimators' own draws do not change.
      **options: the named estimator's options (only with a name).

    Returns:
      ``fn(params, key, *args) -> (value, grads)`` (``((value, aux), grads)`` with
      ``has_aux``), ``grads`` with the structure of ``params``. Stateful estimators take
      ``baseline_state=`` and return ``(that, new_state)`` (start from ``fn.init_state()``);
      learned control variates take ``control_params=`` and return ``(that, control_grads)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.value_and_grad(lambda x: jnp.sum(x ** 2), lambda p: rg.Normal(p, 1.0),
      ...                        rg.score(baseline="loo"), num_samples=256)
      >>> value, g = fn(jnp.ones(3), jax.random.key(0))  # exact: 6 and (2, 2, 2)

    References:
      Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine
      Learning", JMLR 2020 (arXiv:1906.10652).
    """
    est = registry.resolve(estimator, options)
    return transforms.value_and_grad(
        f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key
    )


def grad(
    f: Callable[..., Any],
    dist: Callable[[Any], Any],
    estimator: Estimator | str = "pathwise",
    *,
    num_samples: int = 1,
    has_aux: bool = False,
    sample_sharding: jax.sharding.Sharding | None = None,
    f_key: bool = False,
    **options: Any,
) -> Callable[..., Any]:
    r"""Monte Carlo gradient of E_{x∼dist(params)}[f(x, *args)] by ``estimator``.

    ``rg.grad`` is to ``rg.value_and_grad`` what ``jax.grad`` is to ``jax.value_and_grad``;
    the arguments are the same.

    Returns:
      ``fn(params, key, *args) -> grads`` (``(grads, aux)`` with ``has_aux``; wrapped as
      ``rg.value_and_grad`` describes for stateful estimators and learned control variates).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> g = rg.grad(lambda x: jnp.cos(x), lambda p: rg.Normal(p, 1.0), rg.measure_valued(),
      ...             num_samples=512)(jnp.float32(0.5), jax.random.key(0))  # exact: −sin(0.5)·e^{−1/2}

    References:
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020
      (arXiv:1906.10652).
    """
    est = registry.resolve(estimator, options)
    return transforms.grad(
        f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key
    )


def expectation(
    f: Callable[..., Any],
    dist: Callable[[Any], Any],
    estimator: Estimator | str = "pathwise",
    *,
    num_samples: int = 1,
    has_aux: bool = False,
    sample_sharding: jax.sharding.Sharding | None = None,
    f_key: bool = False,
    **options: Any,
) -> Callable[..., Any]:
    r"""A Monte Carlo estimate of E_{p_θ}[f] whose derivatives are the chosen estimator's.

    .. math::

      L(\theta, \phi) = \frac{1}{N} \sum_{n=1}^N f(x_n, \phi), \quad x_n \sim p_\theta,

    computed as a *surrogate*: its value is the plain Monte Carlo mean, and ``jax.grad`` of
    it with respect to θ (the ``params``) is the estimator, while gradients with respect to
    f's own arguments φ flow by ordinary autodiff, E[∇φ f(x, φ)]. So an ELBO, a policy loss
    or any objective with an expectation inside can be written once and trained with
    ``jax.grad`` and optax.

    **Every derivative order.** ``jax.hessian``, ``jax.jacfwd``/``jacrev`` and ``jax.jvp``
    of the loss are unbiased estimates of the true higher derivatives for the pathwise
    estimator (as far as its sampler is differentiable), the score function (DiCE magic box;
    leave-one-out and moving-average baselines and numeric control variates keep every order
    unbiased), and enumeration (exact). First-order estimators (measure-valued, ARM, DisARM,
    REBAR, RELAX, VIMCO, the optimal baseline) raise ``repgrad.DerivativeOrderError`` at trace
    time when differentiated twice — never a silent wrong number.

    Args:
      f: ``f(x, *args)`` returning a scalar for one sample (``(scalar, aux)`` with
        ``has_aux``).
      dist: ``dist(params)`` returning a distribution.
      estimator: an estimator value or a registered name (``repgrad.ESTIMATORS``).
      num_samples: N (keyword-only, static).
      has_aux: whether f returns ``(value, aux)``.
      sample_sharding: optional ``jax.sharding.Sharding`` for the sample axis.
      f_key: call ``f(x, key_n, *args)`` with a key of its own per sample (see ``rg.value_and_grad``).
      **options: the named estimator's options, e.g. ``baseline="loo"`` for ``"score"``,
        ``coupled=False`` for ``"measure_valued"``.

    Returns:
      ``loss(params, key, *args)``: a scalar; ``(scalar, aux)`` with ``has_aux``. Stateful
      estimators take ``baseline_state=`` and learned control variates ``control_params=``;
      their new state / control gradients then come after aux:
      ``(scalar, extra)`` or ``(scalar, (aux, control_grads, new_state))`` with the ones
      present — ready for ``jax.grad(loss, has_aux=True)``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> f = lambda x, w: jnp.sum((x - w) ** 2)
      >>> loss = rg.expectation(f, lambda p: rg.Normal(p, 1.0), estimator="score",
      ...                       num_samples=64, baseline="loo")
      >>> g_theta, g_w = jax.grad(loss, argnums=(0, 2))(jnp.zeros(2), jax.random.key(0), jnp.ones(2))

    References:
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020.
      Foerster et al., "DiCE: The Infinitely Differentiable Monte Carlo Estimator", ICML 2018.
    """
    est = registry.resolve(estimator, options)
    return transforms.expectation(
        f, dist, est, num_samples=num_samples, has_aux=has_aux, sample_sharding=sample_sharding, f_key=f_key
    )
