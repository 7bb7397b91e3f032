"""Baselines for the score-function estimator, and control variates for score and pathwise.

A baseline b is subtracted from f before it multiplies the score:
(f(x_n) − b_n) ∇θ log p_θ(x_n). It leaves the estimator unbiased as long as b_n does
not depend on x_n, because E[∇θ log p_θ(x)] = 0. State, where a baseline has any, is an
immutable NamedTuple passed in and returned, never mutated.

Beyond scalar baselines: ``optimal_baseline`` (one variance-optimal baseline per
coordinate of the distribution's parameters) and ``ControlVariate``s with a known
expectation (``control_variate`` for a user-supplied h, ``delta_method`` in ``_delta``),
applied by the builders in ``_cv_surrogates``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Baseline(NamedTuple):
    """A score-function baseline.

    Attributes:
      apply: ``apply(values, state) -> (b, new_state)`` with ``values`` the (N,) array
        f(x_1..N) (already stop-gradient) and ``b`` of shape (N,) or ().
      init: ``None`` for a stateless baseline, else ``init() -> state``.
      min_samples: the smallest ``num_samples`` the baseline works with.
      name: a short label for tables and errors.
    """

    apply: Callable[[jax.Array, Any], tuple[jax.Array, Any]]
    init: Callable[[], Any] | None = None
    min_samples: int = 1
    name: str = "baseline"


def no_baseline() -> Baseline:
    """The plain score-function estimator: b = 0."""
    return Baseline(apply=lambda values, state: (jnp.zeros((), values.dtype), state), name="none")


def leave_one_out_baseline() -> Baseline:
    r"""Leave-one-out baseline b_n = (1/(N−1)) Σ_{m≠n} f(x_m) (RLOO).

    With it the score estimator equals
    (1/(N−1)) Σ_n (f(x_n) − f̄) ∇θ log p_θ(x_n), which is unbiased since b_n is
    independent of x_n. Needs N ≥ 2.

    References:
      Kool, van Hoof & Welling, "Buy 4 REINFORCE Samples, Get a Baseline for Free!",
      ICLR DeepRLStructPred workshop 2019.
    """

    def apply(values, state):
        n = values.shape[0]
        return (jnp.sum(values) - values) / (n - 1), state

    return Baseline(apply=apply, min_samples=2, name="loo")


class MovingAverageState(NamedTuple):
    """State of ``moving_average_baseline``: the running average and the step count."""

    value: jax.Array
    count: jax.Array


def moving_average_baseline(decay: float = 0.9, *, debias: bool = True) -> Baseline:
    r"""Exponential moving average of past mean f values as a baseline.

    b_t = m_{t−1} / (1 − decay^{t−1}) (debiased) with m_t = decay·m_{t−1} + (1−decay)·f̄_t.
    The baseline only uses earlier calls' samples, so the estimator stays unbiased.
    State: ``MovingAverageState``, created by ``init()`` and returned by every call.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.score_grad(lambda x: x ** 2, lambda p: rg.Normal(p, 1.0), num_samples=8,
      ...                    baseline=rg.moving_average_baseline(0.9))
      >>> state = fn.init_state()
      >>> g, state = fn(jnp.float32(1.0), jax.random.key(0), baseline_state=state)

    References:
      Williams, "Simple statistical gradient-following algorithms for connectionist
      reinforcement learning", Machine Learning 1992.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}; 0.9 or 0.99 are common.")

    def init():
        return MovingAverageState(value=jnp.zeros(()), count=jnp.zeros((), jnp.int32))

    def apply(values, state):
        value = jnp.asarray(state.value, values.dtype)
        if debias:
            correction = 1.0 - jnp.asarray(decay, values.dtype) ** state.count.astype(values.dtype)
            b = jnp.where(state.count > 0, value / jnp.where(state.count > 0, correction, 1.0), 0.0)
        else:
            b = value
        new_value = decay * value + (1.0 - decay) * jnp.mean(values)
        # Keep the state's own dtype so it is a valid lax.scan carry whatever f's dtype is.
        new_value = new_value.astype(jnp.asarray(state.value).dtype)
        return b, MovingAverageState(value=new_value, count=state.count + 1)

    return Baseline(apply=apply, init=init, name=f"moving_average({decay})")


_NAMED = {
    None: no_baseline,
    "none": no_baseline,
    "loo": leave_one_out_baseline,
    "leave_one_out": leave_one_out_baseline,
    "moving_average": moving_average_baseline,
}


def resolve_baseline(baseline) -> Baseline:
    if isinstance(baseline, Baseline):
        return baseline
    if (baseline is None or isinstance(baseline, str)) and baseline in _NAMED:
        return _NAMED[baseline]()
    raise ValueError(
        f"Unknown baseline {baseline!r}. Use None, 'loo', 'moving_average', 'optimal', or a "
        "repgrad.Baseline such as repgrad.moving_average_baseline(decay=0.99)."
    )


# ----------------------------------------------------------- per-coordinate optimal baseline


class OptimalBaseline(NamedTuple):
    r"""The variance-optimal baseline per distribution-parameter coordinate (score function).

    For the score estimator of coordinate j of a distribution parameter, the baseline
    minimizing the variance is b_j = E[f(x) s_j(x)²] / E[s_j(x)²] with
    s_j = ∂ log p_θ(x)/∂θ_j. Built by ``optimal_baseline``; pass it as
    ``baseline=`` to ``score_grad``/``score_value_and_grad``/``expectation``.

    Attributes:
      estimate: how b_j is estimated: ``"loo"``, ``"fresh"`` or ``"same"``.
      name: a short label.
    """

    estimate: str = "loo"
    name: str = "optimal"

    @property
    def min_samples(self) -> int:
        return 2 if self.estimate == "loo" else 1


def optimal_baseline(estimate: str = "loo") -> OptimalBaseline:
    r"""Per-coordinate variance-optimal baseline for the score-function estimator.

    .. math::

      b_j = \frac{\mathbb{E}[f(x)\, s_j(x)^2]}{\mathbb{E}[s_j(x)^2]}, \quad
      \hat g_j = \frac{1}{N}\sum_n (f(x_n) - b_{n,j})\, s_j(x_n),

    with s_j the score of coordinate j of the *distribution's* parameters (its pytree
    leaves, e.g. ``loc``/``scale`` of a Normal). For repgrad's factorized families the
    per-sample scores are elementwise (N × |x| numbers per leaf, computed with
    ``jax.vmap(jax.grad(log_prob))``), so no per-sample Jacobian with respect to the
    user's params is ever formed: the per-coordinate gradient is pulled back to the
    params with one vector-Jacobian product. The ratio is estimated by

    - ``"loo"`` (default): for sample n, from the other N−1 samples; b_{n,j} does not
      depend on x_n, so the estimator is unbiased (needs N ≥ 2);
    - ``"fresh"``: from N extra samples drawn with a split key; unbiased, costs N
      extra evaluations of f;
    - ``"same"``: from the same N samples; b depends on x_n, so the estimator has an
      O(1/N) bias (usually negligible, but not zero).

    The optimum is per coordinate of the distribution's leaves; when several leaf
    coordinates map to one user parameter it is a good, not the optimal, choice.
    Distributions other than repgrad's factorized families raise a ``TypeError``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> fn = rg.score_grad(lambda x: jnp.sum(x ** 2), lambda p: rg.Normal(p, 1.0),
      ...                    num_samples=32, baseline=rg.optimal_baseline("loo"))
      >>> g = fn(jnp.ones(3), jax.random.key(0))

    References:
      Greensmith, Bartlett & Baxter, "Variance Reduction Techniques for Gradient
      Estimates in Reinforcement Learning", JMLR 2004.
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020
      (arXiv:1906.10652), §7.
    """
    if estimate not in ("loo", "fresh", "same"):
        raise ValueError(
            f"estimate must be 'loo', 'fresh' or 'same', got {estimate!r}; 'loo' is unbiased and free."
        )
    return OptimalBaseline(estimate=estimate, name=f"optimal({estimate})")


def is_optimal_baseline(baseline) -> bool:
    return isinstance(baseline, OptimalBaseline) or (isinstance(baseline, str) and baseline == "optimal")


# -------------------------------------------------------------------- control variates


class ControlVariate(NamedTuple):
    r"""A control variate h with known expectation, for the score and pathwise estimators.

    Attributes:
      build: ``build(fx, d, args) -> (h, expected)``: ``fx(x)`` is f for one sample
        (f's extra args bound and stop-gradient), ``d`` the distribution (differentiable
        in the params), ``args`` f's extra arguments (stop-gradient). Returns ``h(x)``,
        a scalar for one sample that does not depend on the params, and ``expected`` =
        E_d[h], differentiable in ``d``'s parameters.
      coefficient: the scalar c multiplying the control variate.
      name: a short label.
    """

    build: Callable[..., Any]
    coefficient: Any = 1.0
    name: str = "control_variate"


def control_variate(h, expected_value, *, coefficient=1.0) -> ControlVariate:
    r"""A user-supplied control variate h with a known expectation E_p[h].

    With it the score estimator becomes

    .. math::

      \hat g = \frac{1}{N}\sum_n \big(f(x_n) - c\,h(x_n) - b_n\big)\nabla_\theta\log p_\theta(x_n)
               + c\,\nabla_\theta \mathbb{E}_{p_\theta}[h],

    (b_n the baseline, computed from the residuals f − c·h), and the pathwise estimator

    .. math::

      \hat g = \frac{1}{N}\sum_n \nabla_\theta\big[f(x_n) - c\,h(x_n)\big]
               + c\,\nabla_\theta \mathbb{E}_{p_\theta}[h], \quad x_n = g(\theta, \epsilon_n).

    Both are unbiased for any c; c = 1 is right when h ≈ f, and the variance falls by
    the fraction Corr(f-term, h-term)² at the optimal c. ``coefficient="optimal"``
    (score function, repgrad's factorized families) estimates one coefficient per
    coordinate j of the distribution's parameters, c_j = E[a_j v_j]/E[v_j²] with
    a_j = (f − b) s_j and v_j = h s_j − ∂_jE[h] (elementwise scores s_j, no per-sample
    Jacobians), for sample n from the other N − 1 samples, which keeps it unbiased. The reported value is still the
    plain mean of f, and gradients w.r.t. f's own args are not affected (the control
    variate sees them stop-gradient).

    Args:
      h: ``h(x, *args)`` returning a scalar for one sample (same args as f); must not
        depend on the params. For ``pathwise_grad`` it must be differentiable in x.
      expected_value: ``expected_value(d, *args)`` returning E_{x∼d}[h(x, *args)] as a
        differentiable function of the distribution ``d = dist(params)``.
      coefficient: c (a float or scalar array), or ``"optimal"`` (see above).

    Returns:
      A ``ControlVariate`` to pass as ``control_variate=``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> cv = rg.control_variate(lambda x: jnp.sum(x), lambda d: jnp.sum(d.mean()))
      >>> fn = rg.score_grad(lambda x: jnp.sum(x + 0.1 * x ** 2), lambda p: rg.Normal(p, 1.0),
      ...                    num_samples=16, control_variate=cv)
      >>> g = fn(jnp.ones(3), jax.random.key(0))

    References:
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020
      (arXiv:1906.10652), §7.4.
    """
    if not callable(h) or not callable(expected_value):
        raise TypeError(
            "control_variate(h, expected_value) needs two callables: h(x, *args) -> scalar and "
            "expected_value(dist, *args) -> E[h]; e.g. control_variate(jnp.sum, lambda d: jnp.sum(d.mean()))."
        )

    def build(fx, d, args):
        return (lambda x: h(x, *args)), expected_value(d, *args)

    return ControlVariate(build=build, coefficient=coefficient, name="user")


def resolve_control_variate(control_variate):
    if control_variate is None or isinstance(control_variate, ControlVariate):
        return control_variate
    if isinstance(control_variate, str) and control_variate in ("delta", "delta_method"):
        from ._delta import delta_method

        return delta_method()
    raise TypeError(
        f"control_variate must be None, 'delta', or a repgrad.ControlVariate (from "
        f"repgrad.control_variate(h, expected_value) or repgrad.delta_method()); got {control_variate!r}."
    )
