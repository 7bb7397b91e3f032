"""``rg.stochastic``: one surrogate for a function with several stochastic nodes, each with
its own estimator, collected from ``rg.sample`` calls made while the function runs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ..core import checks, protocol
from ..core.kernels import magic_box
from ..variance_reduction.baselines import leave_one_out

_sg = jax.lax.stop_gradient
_STACK: list[_Graph] = []
NODE_ESTIMATORS = ("pathwise", "score")


class _Node(NamedTuple):
    log_prob: jax.Array  # () or the plate's shape
    plate: bool


class _Cost(NamedTuple):
    value: jax.Array
    after: int  # the number of score nodes sampled before it


class _Graph:
    def __init__(self):
        self.nodes: list[_Node] = []
        self.costs: list[_Cost] = []


def _current(what: str) -> _Graph:
    if not _STACK:
        raise RuntimeError(
            f"{what} is only meaningful inside a function transformed by rg.stochastic: write "
            "objective = rg.stochastic(fn) and call objective(params, key, *args). Outside one, "
            "sample with dist.sample(key) directly."
        )
    return _STACK[-1]


def sample(key, dist, *, estimator: str = "pathwise", plate: bool = False):
    r"""Draws one sample of ``dist`` as a stochastic node of the enclosing ``rg.stochastic``.

    - ``estimator="pathwise"``: the sample is a differentiable function of ``dist``'s
      parameters (reparameterization); nothing is recorded.
    - ``estimator="score"``: the sample is stop-gradient and its log-probability is recorded;
      the costs downstream of it (recorded after it, or returned) are multiplied by the DiCE
      magic box of it, which makes every derivative order unbiased.

    Args:
      key: a PRNG key (split your own keys, as everywhere in JAX).
      dist: a distribution (repgrad, distrax/TFP or numpyro); its parameters may depend on
        earlier samples — nested expectations.
      estimator: ``"pathwise"`` or ``"score"``.
      plate: for a score node with a batch of conditionally independent elements: a later
        cost array of the same shape is taken to depend on it elementwise (element i's cost on
        element i only, as a numpyro plate); other costs depend on the whole node.

    Returns:
      The sample.
    """
    graph = _current("rg.sample")
    checks.check_key(key)
    if estimator not in NODE_ESTIMATORS:
        raise ValueError(
            f"rg.sample(estimator=...) takes one of {NODE_ESTIMATORS} inside rg.stochastic, got "
            f"{estimator!r}; for other estimators wrap that expectation in rg.expectation(..., "
            "estimator=...) and call it inside the function (a nested expectation)."
        )
    if estimator == "pathwise":
        if plate:
            raise ValueError("plate=True is for score nodes; a pathwise node records no score term.")
        return protocol.draw_reparameterized(dist, key, 1, "rg.sample(estimator='pathwise')")[0]
    x, log_prob = protocol.draw_scored(dist, key, 1, joint=False)
    x, log_prob = x[0], log_prob[0]
    graph.nodes.append(_Node(log_prob if plate else jnp.sum(log_prob), plate))
    return x


def cost(value):
    """Adds ``value`` (a scalar or an array, summed) to the enclosing ``rg.stochastic``
    objective, as a cost that depends only on the score nodes sampled *before* this call.

    Recording per-step costs as they arise gives reward-to-go weighting (Schulman et al.'s
    causality): a score node is weighted only by costs downstream of it. Returns ``value``.
    """
    graph = _current("rg.cost")
    value = jnp.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise TypeError(f"rg.cost takes a floating-point cost, got dtype {value.dtype}.")
    graph.costs.append(_Cost(value, len(graph.nodes)))
    return value


def _upstream(node: _Node, shape):
    """Node's log-probability as seen by a cost of ``shape``: elementwise for a matching plate."""
    if node.plate and node.log_prob.shape == shape:
        return node.log_prob
    return jnp.broadcast_to(jnp.sum(node.log_prob), shape)


def _downstream(c: _Cost, node: _Node):
    """A cost as seen by a node: elementwise for a matching plate, else its sum."""
    if node.plate and c.value.shape == node.log_prob.shape:
        return c.value
    return jnp.broadcast_to(jnp.sum(c.value), node.log_prob.shape)


def _run(fn, params, key, args):
    """(value, DiCE surrogate without baselines, [node log-probs], [downstream costs]) for one sample."""
    graph = _Graph()
    _STACK.append(graph)
    try:
        out = fn(params, key, *args)
    finally:
        _STACK.pop()
    if out is not None:
        out = jnp.asarray(out)
        if out.shape != ():
            raise TypeError(
                f"the function given to rg.stochastic must return a scalar cost (or None, with costs "
                f"recorded by rg.cost), got shape {out.shape}; reduce it, e.g. jnp.sum(...)."
            )
        graph.costs.append(_Cost(out, len(graph.nodes)))
    if not graph.costs:
        raise TypeError("the function given to rg.stochastic returned None and recorded no rg.cost.")
    dtype = jnp.result_type(*[c.value for c in graph.costs])
    value = sum(jnp.sum(c.value).astype(dtype) for c in graph.costs)
    surrogate = jnp.zeros((), dtype)
    for c in graph.costs:
        if c.after == 0:
            continue
        upstream = functools.reduce(jnp.add, [_upstream(n, c.value.shape) for n in graph.nodes[: c.after]])
        weight = c.value.astype(upstream.dtype)
        surrogate = surrogate + jnp.sum(weight * (magic_box(upstream) - 1.0)).astype(dtype)
    downstream = [
        sum((_downstream(c, n) for c in graph.costs if c.after > w), jnp.zeros(n.log_prob.shape, dtype))
        for w, n in enumerate(graph.nodes)
    ]
    return value, surrogate, [n.log_prob for n in graph.nodes], downstream


def stochastic(
    fn: Callable[..., Any], *, num_samples: int = 1, baseline: str | None = None
) -> Callable[..., Any]:
    r"""A surrogate for E[cost] of a function with several stochastic nodes, unbiased for
    derivatives of every order.

    ``fn(params, key, *args)`` draws its stochastic nodes with ``rg.sample(key_i, dist,
    estimator=...)`` — pathwise here, score there, nested (a node's distribution may depend on
    earlier samples) — and returns a scalar cost, or records costs as they arise with
    ``rg.cost(c)``. The returned objective averages ``num_samples`` independent runs of fn
    (keys split from ``key``) and equals, per run,

    .. math::

      L = \sum_i c_i\, ⊡\Big(\sum_{w \prec i} \log p(x_w)\Big)
          + \sum_w \big(1 - ⊡(\log p(x_w))\big)\, b_w,

    summed over costs i and the score nodes w sampled before them (program order: a cost
    never depends on a node sampled after it, so each score term is weighted only by the
    costs downstream of it — Schulman et al.'s causality, reward-to-go for sequences;
    plates, elementwise). Its value is the Monte Carlo mean of the total cost; ``jax.grad``,
    ``jax.hessian``, ``jax.jvp`` of it estimate the derivatives of E[cost] without bias, with
    pathwise derivatives through the pathwise nodes and through the costs.

    Args:
      fn: ``fn(params, key, *args) -> scalar cost or None``, calling ``rg.sample`` and
        ``rg.cost`` at its top level (not inside its own ``jax.vmap``/``lax.scan``; for a
        rollout inside ``lax.scan`` return the log-probabilities and costs and use ``rg.dice``).
      num_samples: N independent runs averaged (static).
      baseline: ``None`` or ``"loo"``: for each score node, the mean over the other N − 1 runs
        of the cost downstream of it (Loaded DiCE form; every order stays unbiased). Needs N ≥ 2.

    Returns:
      ``objective(params, key, *args)``: the surrogate scalar.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> def model(theta, key):
      ...     k1, k2 = jax.random.split(key)
      ...     z = rg.sample(k1, rg.Normal(theta, 1.0))                                # pathwise
      ...     b = rg.sample(k2, rg.Bernoulli(logits=z), estimator="score")            # score
      ...     return (b - 0.5) ** 2 + z ** 2
      >>> objective = rg.stochastic(model, num_samples=64, baseline="loo")
      >>> g = jax.grad(objective)(jnp.float32(0.3), jax.random.key(0))
      >>> h = jax.hessian(objective)(jnp.float32(0.3), jax.random.key(0))

    References:
      Schulman, Heess, Weber & Abbeel, "Gradient Estimation Using Stochastic Computation
      Graphs", NeurIPS 2015 (arXiv:1506.05254).
      Foerster et al., "DiCE: The Infinitely Differentiable Monte Carlo Estimator", ICML 2018.
      Farquhar, Whiteson & Foerster, "Loaded DiCE", NeurIPS 2019 (arXiv:1909.10549).
    """
    checks.check_callable(fn, "fn", "fn=lambda params, key: cost")
    num_samples = checks.check_num_samples(num_samples)
    if baseline not in (None, "loo"):
        raise ValueError(f"baseline must be None or 'loo', got {baseline!r}.")
    if baseline == "loo":
        checks.check_num_samples(num_samples, 2, " for the loo baseline")

    def objective(params, key, *args):
        checks.check_key(key)
        keys = jax.random.split(key, num_samples)
        value, surrogate, log_probs, downstream = jax.vmap(lambda k: _run(fn, params, k, args))(keys)
        total = jnp.mean(value) + jnp.mean(surrogate)
        if baseline == "loo":
            for lp, d in zip(log_probs, downstream, strict=True):
                b = _sg(leave_one_out(d)).astype(lp.dtype)
                total = total + jnp.mean(jnp.sum(jnp.reshape(b * (1.0 - magic_box(lp)), (num_samples, -1)), 1)).astype(total.dtype)
        return total

    name = getattr(fn, "__name__", "fn")
    objective.__name__ = objective.__qualname__ = f"stochastic_{name}"
    objective.__doc__ = f"DiCE surrogate of E[cost] of {name}(params, key, *args) over {num_samples} runs."
    return objective
