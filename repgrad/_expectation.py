"""``expectation``: a Monte Carlo objective whose ``jax.grad`` is a chosen estimator."""

from __future__ import annotations

import inspect

from . import _core
from ._measure_valued import _measure_valued_surrogate
from ._pathwise import _pathwise_surrogate
from ._score import _score_surrogate

# name -> builder(f, dist, *, num_samples, has_aux, **options) -> _core.Surrogate.
# Other modules add their estimators with ``register_estimator``.
ESTIMATORS = {
    "pathwise": _pathwise_surrogate,
    "reparameterization": _pathwise_surrogate,
    "score": _score_surrogate,
    "score_function": _score_surrogate,
    "reinforce": _score_surrogate,
    "measure_valued": _measure_valued_surrogate,
}


def register_estimator(name: str, builder) -> None:
    """Makes ``builder`` available as ``expectation(..., estimator=name)``."""
    ESTIMATORS[name] = builder


def expectation(f, dist, *, estimator: str = "pathwise", num_samples: int = 1, has_aux: bool = False, **options):
    r"""A Monte Carlo estimate of E_{p_θ}[f] whose gradient is the chosen estimator.

    .. math::

      L(\theta, \phi) = \frac{1}{N} \sum_{n=1}^N f(x_n, \phi), \quad x_n \sim p_\theta,

    computed as a *surrogate*: its value is the plain Monte Carlo mean, and
    ``jax.grad(loss)`` with respect to θ (the ``params``) is the estimator named by
    ``estimator``, while gradients with respect to f's own arguments φ flow by ordinary
    autodiff, E[∇φ f(x, φ)]. So an ELBO, a policy loss or any objective with an
    expectation inside can be written once and trained with ``jax.grad`` and optax.
    The score-function surrogate is f̄ + (1/N) Σ ⊥(f_n − b_n)(log p_n − ⊥log p_n) with ⊥
    the stop-gradient, as in DiCE (Foerster et al., 2018); only first derivatives w.r.t.
    θ are estimator-exact.

    Args:
      f: ``f(x, *args)`` returning a scalar for one sample (``(scalar, aux)`` with
        ``has_aux``).
      dist: ``dist(params)`` returning a distribution.
      estimator: ``"pathwise"``, ``"score"``, ``"measure_valued"``, or any name added
        by repgrad's other estimators (see ``repgrad.ESTIMATORS``).
      num_samples: N (keyword-only, static).
      has_aux: whether f returns ``(value, aux)``.
      **options: estimator options, e.g. ``baseline="loo"`` for ``"score"``,
        ``coupled=False`` for ``"measure_valued"``, ``sample_sharding=...``.

    Returns:
      ``loss(params, key, *args)``: a scalar; ``(scalar, aux)`` with ``has_aux``;
      ``(scalar, new_state)`` with a stateful baseline (``(scalar, (aux, new_state))``
      with both), ready for ``jax.grad(loss, has_aux=True)``.

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
    if estimator not in ESTIMATORS:
        raise ValueError(f"Unknown estimator {estimator!r}; choose one of {sorted(ESTIMATORS)}.")
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    builder = ESTIMATORS[estimator]
    _check_options(estimator, builder, options)
    surrogate = builder(f, dist, num_samples=num_samples, has_aux=has_aux, **options)
    return _core.make_expectation(surrogate, f, has_aux)


def _check_options(estimator, builder, options):
    """TypeError naming the valid options when ``options`` has one ``builder`` does not take."""
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins / C callables
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    valid = sorted(set(named[2:]) - {"num_samples", "has_aux"})  # named[:2] are f and dist
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"expectation(estimator={estimator!r}) got unknown option(s) {unknown}; "
            f"{estimator!r} accepts {valid or 'no options'}. Options of other estimators "
            "(e.g. baseline= for 'score') do not apply to it."
        )
