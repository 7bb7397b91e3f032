"""Score-function (likelihood-ratio, REINFORCE) gradient estimator."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _control_variates, _core, _cv_surrogates

_sg = jax.lax.stop_gradient


def _score_surrogate(
    f, dist, *, num_samples, has_aux, baseline=None, control_variate=None, sample_sharding=None
):
    if control_variate is not None or _control_variates.is_optimal_baseline(baseline):
        return _cv_surrogates.score_cv_surrogate(
            f,
            dist,
            num_samples=num_samples,
            has_aux=has_aux,
            baseline=baseline,
            control_variate=control_variate,
            sample_sharding=sample_sharding,
        )
    baseline = _control_variates.resolve_baseline(baseline)
    _core.check_num_samples(num_samples, baseline.min_samples, f" for the {baseline.name} baseline")

    def fn(params, key, args, state):
        d = _core.resolve_dist(dist, params)
        x = _sg(_core.shard_samples(_core.draw(d, key, num_samples), sample_sharding))
        values, aux = _core.eval_f(f, x, args, has_aux, num_samples)
        b, new_state = baseline.apply(_sg(values), state)
        log_p = _core.joint_log_prob(d, x, num_samples)
        weights = _sg(values - b).astype(log_p.dtype)
        # value E[f] plus a term that is zero in value and has the score estimator as gradient.
        # (Casts let f's dtype differ from the distribution's, e.g. float32 f of float64 params.)
        value = jnp.mean(values)
        loss = value + jnp.mean(weights * (log_p - _sg(log_p))).astype(value.dtype)
        return loss, (value, aux, new_state)

    return _core.Surrogate(fn, baseline.init)


def score_value_and_grad(
    f,
    dist,
    *,
    num_samples: int = 1,
    has_aux: bool = False,
    baseline=None,
    control_variate=None,
    sample_sharding=None,
):
    r"""Monte Carlo value and score-function gradient of E_{p_θ}[f].

    .. math::

      \nabla_\theta \mathbb{E}_{p_\theta}[f(x)]
        = \mathbb{E}_{p_\theta}[(f(x) - b)\, \nabla_\theta \log p_\theta(x)]
        \approx \frac{1}{N} \sum_{n=1}^N (f(x_n) - b_n)\, \nabla_\theta \log p_\theta(x_n).

    Works for any distribution with a differentiable log-density, discrete ones
    included, and f need not be differentiable. Unbiased for any baseline b_n that does
    not depend on x_n; the variance grows with f's magnitude and the dimension of x,
    which is what baselines fight (Mohamed et al., 2020, §4 and §7). The gradient is
    one vector-Jacobian product of Σ_n w_n log p_θ(x_n): no per-sample Jacobians.

    Args:
      f: ``f(x, *args)`` returning a scalar for one sample (``(scalar, aux)`` with
        ``has_aux``).
      dist: ``dist(params)`` returning any distribution with ``sample`` and ``log_prob``.
      num_samples: N (keyword-only, static).
      has_aux: whether f returns ``(value, aux)``.
      baseline: ``None``, ``"loo"`` (leave-one-out, needs N ≥ 2), ``"moving_average"``
        or a ``repgrad.Baseline``. A stateful baseline makes the transform take
        ``baseline_state=`` and return ``(result, new_state)``; start from
        ``fn.init_state()``. ``"optimal"`` or ``repgrad.optimal_baseline(...)``: the
        per-coordinate variance-optimal baseline (repgrad's factorized families).
      control_variate: ``None``, ``"delta"``, or a ``repgrad.ControlVariate`` (from
        ``repgrad.control_variate(h, expected_value)`` or ``repgrad.delta_method()``):
        f − c·h replaces f in the weights (the baseline is computed from it) and
        c·∇θE[h] is added.
      sample_sharding: optional ``jax.sharding.Sharding`` for the sample axis.

    Returns:
      ``fn(params, key, *args) -> (value, grads)`` (``((value, aux), grads)`` with
      ``has_aux``; ``(that, new_state)`` with a stateful baseline).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> dist = lambda p: rg.Bernoulli(logits=p)
      >>> fn = rg.score_value_and_grad(lambda b: jnp.sum((b - 0.45) ** 2), dist,
      ...                              num_samples=64, baseline="loo")
      >>> value, g = fn(jnp.zeros(3), jax.random.key(0))

    References:
      Williams, "Simple statistical gradient-following algorithms for connectionist
      reinforcement learning", Machine Learning 1992.
      Glynn, "Likelihood ratio gradient estimation for stochastic systems", CACM 1990.
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020, §4.
    """
    num_samples = _core.check_num_samples(num_samples)
    has_aux = _core.check_has_aux(has_aux)
    surrogate = _score_surrogate(
        f,
        dist,
        num_samples=num_samples,
        has_aux=has_aux,
        baseline=baseline,
        control_variate=control_variate,
        sample_sharding=sample_sharding,
    )
    return _core.make_value_and_grad(surrogate, f, has_aux)


def score_grad(
    f,
    dist,
    *,
    num_samples: int = 1,
    has_aux: bool = False,
    baseline=None,
    control_variate=None,
    sample_sharding=None,
):
    r"""Score-function (REINFORCE) gradient of E_{p_θ}[f]; see ``score_value_and_grad``.

    .. math::

      \hat g = \frac{1}{N} \sum_{n=1}^N (f(x_n) - b_n)\, \nabla_\theta \log p_\theta(x_n).

    Returns:
      ``fn(params, key, *args) -> grads`` (``(grads, aux)`` with ``has_aux``;
      ``(that, new_state)`` with a stateful baseline).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> grad_fn = rg.score_grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0),
      ...                         num_samples=4096, baseline="loo")
      >>> g = grad_fn(jnp.float32(1.5), jax.random.key(0))  # exact: 3

    References:
      Williams 1992; Kool et al. 2019 (RLOO); Mohamed et al. 2020 (arXiv:1906.10652), §4.
    """
    vg = score_value_and_grad(
        f,
        dist,
        num_samples=num_samples,
        has_aux=has_aux,
        baseline=baseline,
        control_variate=control_variate,
        sample_sharding=sample_sharding,
    )
    return _core.make_grad(vg, f, has_aux)
