"""Score-function (likelihood-ratio, REINFORCE) gradient estimator."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core import kernels, protocol
from ..core.estimator import Estimator, Out
from ..variance_reduction import optimal
from ..variance_reduction.baselines import OptimalBaseline, resolve_baseline
from ..variance_reduction.compose import resolve_control_variate, with_control_variate

_sg = jax.lax.stop_gradient


def score(*, baseline=None, control_variate=None) -> Estimator:
    r"""The score-function (likelihood-ratio, REINFORCE) estimator.

    .. math::

      \nabla_\theta \mathbb{E}_{p_\theta}[f(x)]
        = \mathbb{E}_{p_\theta}[(f(x) - b)\, \nabla_\theta \log p_\theta(x)]
        \approx \frac{1}{N} \sum_{n=1}^N (f(x_n) - b_n)\, \nabla_\theta \log p_\theta(x_n).

    Works for any distribution with a differentiable log-density, discrete ones included,
    and f need not be differentiable. Unbiased for any baseline b_n that does not depend on
    x_n; the variance grows with f's magnitude and the dimension of x, which is what
    baselines fight (Mohamed et al., 2020, §4 and §7). The gradient is one vector-Jacobian
    product of Σ_n w_n log p_θ(x_n): no per-sample Jacobians.

    **Every derivative order.** The surrogate is f̄ + (1/N) Σ_n (f_n − b_n)(⊡(log p_n) − 1)
    with the DiCE magic box ⊡(τ) = exp(τ − ⊥τ); its k-th derivative is
    (1/N) Σ_n (f_n − b_n) ∇^k p_θ(x_n)/p_θ(x_n), unbiased for ∇^k E[f] since
    E[∇^k p/p] = 0 (Foerster et al., 2018; Farquhar et al., 2019). So ``jax.hessian`` of
    ``rg.expectation(..., estimator="score")`` estimates the Hessian, with or without a
    leave-one-out or moving-average baseline, and mixed derivatives in f's own arguments are
    right too. The per-coordinate ``optimal`` baseline and ``coefficient="optimal"`` are
    first-order estimators (a second derivative raises ``repgrad.DerivativeOrderError``).

    **Randomness inside f** (a noisy reward, a simulator): pass ``f_key=True`` to the transform
    (``rg.score_grad(f, dist, f_key=True)``) and f is called as ``f(x, key_n, *args)`` with a key
    of its own per sample. For several stochastic nodes — sequential decisions, nested choices,
    per-step costs — write the program with ``rg.sample``/``rg.cost`` and ``rg.stochastic``,
    which gives each run its own key and credits each node only with the costs downstream of it.

    Args:
      baseline: ``None``, ``"loo"`` (leave-one-out, needs N ≥ 2), ``"moving_average"``,
        a ``repgrad.Baseline`` (a stateful one makes calls take ``baseline_state=`` and
        return the new state), or ``"optimal"`` / ``repgrad.optimal_baseline(...)`` (the
        per-coordinate variance-optimal baseline, for repgrad's factorized families).
      control_variate: ``None``, ``"delta"``, or a ``repgrad.ControlVariate``: f − c·h
        replaces f in the weights (the baseline is computed from it) and c·∇θE[h] is added.

    Returns:
      An ``Estimator`` for ``rg.grad``, ``rg.value_and_grad`` and ``rg.expectation``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> loss = rg.expectation(lambda x: x ** 3, lambda p: rg.Normal(p[0], p[1]),
      ...                       rg.score(baseline="loo"), num_samples=4096)
      >>> hess = jax.hessian(loss)(jnp.array([0.7, 1.3]), jax.random.key(0))  # ≈ [[4.2, 7.8], [7.8, 4.2]]

    References:
      Williams, "Simple statistical gradient-following algorithms for connectionist
      reinforcement learning", Machine Learning 1992.
      Foerster et al., "DiCE: The Infinitely Differentiable Monte Carlo Estimator", ICML 2018
      (arXiv:1802.05098).
      Farquhar, Whiteson & Foerster, "Loaded DiCE: Trading off Bias and Variance in
      Any-Order Score Function Estimators for Reinforcement Learning", NeurIPS 2019
      (arXiv:1909.10549).
      Mohamed et al., "Monte Carlo Gradient Estimation in Machine Learning", JMLR 2020, §4.
    """
    base = resolve_baseline(baseline)
    cv = resolve_control_variate(control_variate)
    if cv is not None and isinstance(cv.coefficient, str):
        return optimal.coefficient_estimator(base, cv)
    if isinstance(base, OptimalBaseline):
        est = _optimal_baseline_estimator(base)
    else:

        def surrogate(problem, d, key, state, control):
            x, log_p = protocol.draw_scored(d, key, problem.num_samples, problem.shard)
            values, aux = problem.evaluate(x)
            b, new_state = base.apply(_sg(values), state)
            value = jnp.mean(values)
            return Out(value + kernels.score_term(values - b, log_p), value, aux, new_state)

        est = Estimator(
            _name(base.name), surrogate, init=base.init or (lambda: ()), stateful=base.init is not None,
            min_samples=base.min_samples,
        )
    return with_control_variate(est, cv)


def _name(baseline_name):
    return "score" if baseline_name == "none" else f"score ({baseline_name} baseline)"


def _draw_and_evaluate(problem, d, key):
    x = _sg(problem.shard(protocol.draw(d, key, problem.num_samples)))
    values, aux = problem.evaluate(x)
    return x, values, aux


def _optimal_baseline_estimator(base: OptimalBaseline) -> Estimator:
    """Score function with b_j = E[f s_j²]/E[s_j²] per leaf coordinate (first order)."""
    name = _name(base.name)

    def surrogate(problem, d, key, state, control):
        if base.estimate == "fresh":
            key, key_b = jax.random.split(key)
        x, values, aux = _draw_and_evaluate(problem, d, key)
        d_sg = jax.tree_util.tree_map(_sg, d)
        fresh = None
        if base.estimate == "fresh":
            x_b = _sg(protocol.draw(d_sg, key_b, problem.num_samples))
            values_b = problem.evaluate(x_b, keys=problem.new_keys(key_b))[0]
            fresh = (_sg(values_b), optimal.elementwise_scores(d_sg, x_b))
        grads = optimal.baseline_grads(base.estimate, values, optimal.elementwise_scores(d_sg, x), fresh)
        value = jnp.mean(values)
        term = kernels.pullback(zip(jax.tree_util.tree_leaves(d), grads, strict=True), name, value.dtype)
        return Out(value + term, value, aux)

    return Estimator(name, surrogate, min_samples=base.min_samples, max_order=1)
