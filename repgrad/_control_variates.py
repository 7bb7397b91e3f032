"""Baselines for the score-function estimator.

A baseline b is subtracted from f before it multiplies the score:
(f(x_n) − b_n) ∇θ log p_θ(x_n). It leaves the estimator unbiased as long as b_n does
not depend on x_n, because E[∇θ log p_θ(x)] = 0. State, where a baseline has any, is an
immutable NamedTuple passed in and returned, never mutated.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

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
        f"Unknown baseline {baseline!r}. Use None, 'loo', 'moving_average', or a "
        "repgrad.Baseline such as repgrad.moving_average_baseline(decay=0.99)."
    )
