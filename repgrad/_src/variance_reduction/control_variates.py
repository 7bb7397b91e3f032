"""Control variates with a known expectation: the ``ControlVariate`` value, a user-supplied
one, and building (h, E[h]) for one call. How they compose with estimators is in ``compose.py``;
the delta method is in ``delta.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

_sg = jax.lax.stop_gradient


class ControlVariate(NamedTuple):
    r"""A control variate h with known expectation.

    Attributes:
      build: ``build(fx, d, args) -> (h, expected)``: ``fx(x)`` is f for one sample
        (f's extra args bound and stop-gradient), ``d`` the distribution (differentiable
        in the params), ``args`` f's extra arguments (stop-gradient). Returns ``h(x)``,
        a scalar for one sample, and ``expected`` = E_d[h], differentiable in ``d``'s
        parameters. h may depend on the params through ``d`` (e.g. a Taylor expansion at
        the differentiable mean); estimators then differentiate it too.
      coefficient: the scalar c multiplying the control variate, or ``"optimal"``.
      name: a short label.
    """

    build: Callable[..., Any]
    coefficient: Any = 1.0
    name: str = "control_variate"


def control_variate(h, expected_value, *, coefficient=1.0) -> ControlVariate:
    r"""A user-supplied control variate h with a known expectation E_p[h].

    With it any estimator ĝ(·) becomes ĝ(f − c·h) + c·∇θE[h]; e.g. the score estimator

    .. math::

      \hat g = \frac{1}{N}\sum_n \big(f(x_n) - c\,h(x_n) - b_n\big)\nabla_\theta\log p_\theta(x_n)
               + c\,\nabla_\theta \mathbb{E}_{p_\theta}[h],

    (b_n the baseline, computed from the residuals f − c·h), and the pathwise estimator

    .. math::

      \hat g = \frac{1}{N}\sum_n \nabla_\theta\big[f(x_n) - c\,h(x_n)\big]
               + c\,\nabla_\theta \mathbb{E}_{p_\theta}[h], \quad x_n = g(\theta, \epsilon_n).

    Both are unbiased for any c; c = 1 is right when h ≈ f, and the variance falls by
    the fraction Corr(f-term, h-term)² at the optimal c. ``coefficient="optimal"``
    estimates one coefficient per coordinate j of the distribution's parameters,
    c_j = Cov(a_j, v_j)/Var(v_j), for sample n by regression on the other N − 1 samples
    only, which keeps the estimate unbiased (first derivatives only, N ≥ 3). With the score
    function (repgrad's factorized families) a_j = (f − b) s_j and v_j = (h − β) s_j − ∂_jE[h]
    (elementwise scores s_j, no per-sample Jacobians; β = E[h] when there is a baseline, 0
    otherwise; a leave-one-out baseline is recomputed without sample n for the regression);
    with any other estimator a_j and v_j come from running it one sample at a time (see
    ``repgrad.with_control_variate``). Where the control variate's estimate has no randomness
    (v_j is rounding noise: e.g. a measure-valued estimate of a separable h on a Bernoulli),
    c_j is 0. The reported value is unbiased for E[f]: with a fixed coefficient, the
    estimator's value of f − c·h plus c·E[h]; with the optimal one, the plain mean of f.
    Gradients w.r.t. f's own args are not affected (the control variate sees them
    stop-gradient).

    Args:
      h: ``h(x, *args)`` returning a scalar for one sample (same args as f); must not
        depend on the params. For the pathwise estimator it must be differentiable in x.
      expected_value: ``expected_value(d, *args)`` returning E_{x∼d}[h(x, *args)] as a
        differentiable function of the distribution ``d = dist(params)``.
      coefficient: c (a float or scalar array), or ``"optimal"`` (see above).

    Returns:
      A ``ControlVariate`` to pass as ``control_variate=`` or to ``with_control_variate``.

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


def build(cv: ControlVariate, problem, d):
    """``(h, expected)`` for this call: f's extra args enter stop-gradient."""
    sg_args = _sg(problem.args)
    f_value, key = problem.f_value, problem.fixed_key  # f's noise at the expansion point: fixed
    return cv.build(lambda xi: f_value(xi, key, *sg_args), d, sg_args)
