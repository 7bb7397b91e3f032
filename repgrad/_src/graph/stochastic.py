"""``rg.stochastic``: one surrogate for a function with several stochastic nodes, each with
its own estimator, collected from ``rg.sample`` calls made while the function runs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from ..core import checks, dependence, kernels, protocol
from ..core.kernels import magic_box
from . import provenance

_sg = jax.lax.stop_gradient
_STACK: list[_Graph] = []
NODE_ESTIMATORS = ("pathwise", "score", "auto")
DOWNSTREAM = ("traced", "program_order")
LIST_AUTO = "list"  # an assignment that records the auto nodes instead of resolving them (AutoNode)


class AutoNode(NamedTuple):
    """An ``rg.sample(..., estimator="auto")`` node, as ``objective.auto_nodes`` lists it.

    Attributes:
      index: its place among the auto nodes, in program order (the index of ``estimators=``).
      dist: the distribution's class name.
      pathwise: whether the pathwise estimator can draw it (a reparameterizable family).
      score: whether the score function can (its support does not move with its parameters).
    """

    index: int
    dist: str
    pathwise: bool
    score: bool

    @property
    def options(self) -> tuple[str, ...]:
        """The estimators that apply to it: ``("pathwise", "score")``, or one of them."""
        return tuple(e for e, ok in (("pathwise", self.pathwise), ("score", self.score)) if ok)


class _Node(NamedTuple):
    log_prob: jax.Array  # () or the plate's shape
    plate: bool
    sample: Any  # the sample's shape-dtype (a pytree of jax.ShapeDtypeStruct)


class _Cost(NamedTuple):
    value: jax.Array
    after: int  # the number of score nodes sampled before it


class _Graph:
    def __init__(self, tags=None, sources=None, assignment=None):
        self.nodes: list[_Node] = []
        self.costs: list[_Cost] = []
        # (shape-dtype, distribution name, auto index or None) of each pathwise node's sample
        self.pathwise: list = []
        self.tags = tags  # when reading the graph's jaxpr: one input per pathwise node, added to it
        self.sources = sources  # when tracing provenance: one input per score node, its sample
        self.assignment = assignment  # the estimator of each auto node (a tuple), None, or LIST_AUTO
        self.auto: list[AutoNode] = []  # the auto nodes met so far, in program order
        # rg.sample/rg.cost must run in this trace, not inside a jax.vmap/lax.scan/jit of fn's own
        self.trace = jcore.get_opaque_trace_state(convention="repgrad")


def _current(what: str) -> _Graph:
    if not _STACK:
        raise RuntimeError(
            f"{what} is only meaningful inside a function transformed by rg.stochastic: write "
            "objective = rg.stochastic(fn) and call objective(params, key, *args). Outside one, "
            "sample with dist.sample(key) directly."
        )
    graph = _STACK[-1]
    if jcore.get_opaque_trace_state(convention="repgrad") != graph.trace:
        raise RuntimeError(
            f"{what} was called inside a JAX transformation of the function given to rg.stochastic "
            "(its own jax.vmap, lax.scan, lax.fori_loop, lax.cond, jax.jit or jax.checkpoint): "
            "stochastic nodes and costs must be recorded at the function's top level, where "
            "rg.stochastic can see them. For a rollout inside lax.scan, return the per-step "
            "log-probabilities and costs and use rg.dice(costs, log_probs, dependence='causal'); "
            "for independent copies, use num_samples= (or rg.sample(..., plate=True))."
        )
    return graph


def sample(key, dist, *, estimator: str = "pathwise", plate: bool = False):
    r"""Draws one sample of ``dist`` as a stochastic node of the enclosing ``rg.stochastic``.

    - ``estimator="pathwise"``: the sample is a differentiable function of ``dist``'s
      parameters (reparameterization); nothing is recorded.
    - ``estimator="score"``: the sample is stop-gradient and its log-probability is recorded;
      the costs downstream of it (those whose value depends on it, see ``rg.stochastic``'s
      ``downstream=``) are multiplied by the DiCE magic box of it, which makes every
      derivative order unbiased.
    - ``estimator="auto"``: one of the two, chosen for the whole graph by
      ``rg.select_estimator(objective, params, key, *args)`` (a pilot run that measures the
      variance × time of the graph's gradient for each assignment) and fixed by
      ``rg.stochastic(fn, estimators=...)`` or ``objective.with_estimators(...)``: auto nodes
      are numbered in program order. A graph with an unassigned auto node raises at trace
      time, naming ``rg.select_estimator``.

    Args:
      key: a PRNG key (split your own keys, as everywhere in JAX).
      dist: a distribution (repgrad, distrax/TFP or numpyro); its parameters may depend on
        earlier samples — nested expectations.
      estimator: ``"pathwise"``, ``"score"`` or ``"auto"``.
      plate: for a score node with a batch of conditionally independent elements: a later
        cost array of the same shape is taken to depend on it elementwise (element i's cost on
        element i only, as a numpyro plate); other costs depend on the whole node. An auto
        node assigned ``"pathwise"`` ignores it.

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
    auto = None
    if estimator == "auto":
        auto = len(graph.auto)
        estimator = _resolve_auto(graph, dist, key)
        plate = plate and estimator == "score"
    if estimator == "pathwise":
        if plate:
            raise ValueError("plate=True is for score nodes; a pathwise node records no score term.")
        x = jax.tree_util.tree_map(
            lambda a: a[0], protocol.draw_reparameterized(dist, key, 1, "rg.sample(estimator='pathwise')")
        )
        if graph.tags is not None:  # reading the graph: the node's sample is a source
            x = jax.tree_util.tree_map(jnp.add, x, graph.tags[len(graph.pathwise)])
        shapes = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), x)
        graph.pathwise.append((shapes, type(dist).__name__, auto))
        return x
    x, log_prob = protocol.draw_scored(dist, key, 1, joint=False)
    x, log_prob = x[0], log_prob[0]
    shapes = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), x)
    if graph.sources is not None:  # tracing provenance: the node's sample is an input
        x = graph.sources[len(graph.nodes)]
        log_prob = dist.log_prob(x)
    graph.nodes.append(_Node(log_prob if plate else jnp.sum(log_prob), plate, shapes))
    return x


def _auto_node(index, dist, key) -> AutoNode:
    """What applies to an auto node's distribution: pathwise needs a reparameterizable family
    (or, when the distribution does not say, floating-point samples), the score function a
    support that does not move with the parameters."""
    rep = protocol.is_reparameterized(dist)
    if rep is None:
        draw = jax.eval_shape(lambda k: protocol.draw(dist, k, 1, reparameterized=True), key)
        rep = all(jnp.issubdtype(a.dtype, jnp.floating) for a in jax.tree_util.tree_leaves(draw))
    return AutoNode(index, type(dist).__name__, bool(rep), not protocol.support_depends_on_params(dist))


def _resolve_auto(graph: _Graph, dist, key) -> str:
    """The estimator of the next auto node: from the graph's assignment, or (listing the auto
    nodes) the first that applies."""
    node = _auto_node(len(graph.auto), dist, key)
    graph.auto.append(node)
    if graph.assignment == LIST_AUTO:
        if not node.options:
            raise TypeError(
                f"rg.sample(estimator='auto') node #{node.index} ({node.dist}): neither pathwise (not "
                "reparameterizable) nor the score function (its support moves with its parameters) applies."
            )
        return node.options[0]
    if graph.assignment is None:
        raise ValueError(
            f"rg.sample(estimator='auto') (node #{node.index}, {node.dist}) has no estimator yet: choose one "
            "per auto node by a pilot run, choice = rg.select_estimator(objective, params, key, *args), "
            "then use choice.objective (or rg.stochastic(fn, estimators=choice.estimator)); or give "
            "rg.stochastic(fn, estimators=('pathwise', 'score', ...)), one per auto node in program order."
        )
    if node.index >= len(graph.assignment) or graph.assignment[node.index] is None:
        raise ValueError(
            f"rg.stochastic(estimators={_show(graph.assignment)}) assigns no estimator to auto node "
            f"#{node.index} ({node.dist}): give one per rg.sample(estimator='auto') call, in program order."
        )
    return graph.assignment[node.index]


def _show(assignment):
    return repr(tuple(assignment)) if assignment is not None else "None"


def cost(value):
    """Adds ``value`` (a scalar or an array, summed) to the enclosing ``rg.stochastic``
    objective, as a cost that depends only on the score nodes sampled *before* this call
    (and, by default, only on those its value is computed from).

    Recording per-step costs as they arise gives reward-to-go weighting (Schulman et al.'s
    causality): a score node is weighted only by costs downstream of it. Integer and boolean
    costs (a count, a success flag) are legitimate for score nodes and are summed in floating
    point. Returns ``value``.
    """
    graph = _current("rg.cost")
    value = jnp.asarray(value)
    if not (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == jnp.bool_):
        raise TypeError(f"rg.cost takes a numeric cost, got dtype {value.dtype}.")
    graph.costs.append(_Cost(value, len(graph.nodes)))
    return value


def _float_dtype(costs, log_probs):
    """The objective's dtype: the costs' when floating, else (integer or boolean costs, which the
    score function takes as they are) the log-probabilities' or JAX's default float."""
    dtype = jnp.result_type(*costs)
    if jnp.issubdtype(dtype, jnp.floating):
        return dtype
    return jnp.result_type(*log_probs) if log_probs else jax.dtypes.canonicalize_dtype(float)


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


def _record(fn, params, key, args, tags=None, sources=None, assignment=None) -> _Graph:
    """Runs fn once, collecting its nodes and costs (the returned cost last)."""
    graph = _Graph(tags, sources, assignment)
    _STACK.append(graph)
    try:
        out = fn(params, key, *args)
    finally:
        _STACK.pop()
    if isinstance(assignment, tuple) and len(graph.auto) < len(assignment):
        raise ValueError(
            f"rg.stochastic(estimators={_show(assignment)}) gives {len(assignment)} estimators, but the "
            f"function samples {len(graph.auto)} node(s) with rg.sample(estimator='auto'): give one per auto "
            "node, in program order."
        )
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
    dtype = _float_dtype([c.value for c in graph.costs], [n.log_prob for n in graph.nodes])
    graph.costs = [c._replace(value=c.value.astype(dtype)) for c in graph.costs]
    return graph


def _run(fn, params, key, args, seen, downstream, assignment=None):
    """(value, DiCE surrogate without baselines, [node log-probs], [downstream costs]) for one sample;
    appends the graph's pathwise nodes to ``seen``."""
    graph = _record(fn, params, key, args, assignment=assignment)
    seen.extend(graph.pathwise)
    if downstream == "traced":
        upstream_of = _traced(fn, params, key, args, graph, assignment)
    else:
        upstream_of = [range(c.after) for c in graph.costs]
    dtype = jnp.result_type(graph.costs[0].value)
    value = sum(jnp.sum(c.value) for c in graph.costs)
    surrogate = jnp.zeros((), dtype)
    for c, ups in zip(graph.costs, upstream_of, strict=True):
        if not ups:
            continue
        upstream = functools.reduce(jnp.add, [_upstream(graph.nodes[w], c.value.shape) for w in ups])
        weight = c.value.astype(upstream.dtype)
        surrogate = surrogate + jnp.sum(weight * (magic_box(upstream) - 1.0)).astype(dtype)
    downstream_costs = [
        sum(
            (_downstream(c, n) for c, ups in zip(graph.costs, upstream_of, strict=True) if w in ups),
            jnp.zeros(n.log_prob.shape, dtype),
        )
        for w, n in enumerate(graph.nodes)
    ]
    return value, surrogate, [n.log_prob for n in graph.nodes], downstream_costs


def _traced(fn, params, key, args, graph: _Graph, assignment=None) -> list[list[int]]:
    """For each cost, the score nodes it depends on: those whose sample its value reads, and
    their ancestors (a node whose distribution reads an earlier node's sample), found by
    tracing fn with the nodes' samples as inputs (``provenance.py``)."""
    if not graph.nodes:
        return [[] for _ in graph.costs]

    def costs_and_log_probs(*samples):
        traced = _record(fn, params, key, args, sources=samples, assignment=assignment)
        return [c.value for c in traced.costs], [n.log_prob for n in traced.nodes]

    deps = provenance.provenance(costs_and_log_probs, [n.sample for n in graph.nodes])
    num_costs = len(graph.costs)
    parents = [d - {w} for w, d in enumerate(deps[num_costs:])]
    closure = provenance.ancestors(parents)
    return [sorted(provenance.downstream_of(d, closure)) for d in deps[:num_costs]]


def _check_pathwise(total, fn, params, key, args, nodes, assignment=None):
    """``total``, raising when differentiated in ``params`` if the costs depend on a pathwise node
    only piecewise-constantly or through a jump (read off the graph's jaxpr, each node's sample a
    source): the pathwise derivative would miss that dependence."""

    def total_cost(*tags):
        graph = _record(fn, params, key, args, tags, assignment=assignment)
        return sum(jnp.sum(c.value) for c in graph.costs)

    states = dependence.dependence(total_cost, [node[0] for node in nodes], list(range(len(nodes))))
    bad = [(i, s) for i, s in enumerate(states or ()) if s in (dependence.PIECEWISE, dependence.JUMP)]
    if not bad:
        return total
    i, state = bad[0]
    _, name, auto = nodes[i]
    how = "only through piecewise-constant operations" if state == dependence.PIECEWISE else "through a jump"
    if auto is None:
        which = f"pathwise node #{i} (an rg.sample of {name} with estimator='pathwise', in program order)"
        fix = "Sample that node with rg.sample(..., estimator='score')"
    else:
        which = (f"auto node #{auto} (an rg.sample of {name} with estimator='auto', assigned 'pathwise'; "
                 f"pathwise node #{i} in program order)")
        fix = f"Assign 'score' to auto node #{auto} (rg.select_estimator does so by itself)"
    message = (
        f"rg.stochastic: the cost depends on {which} {how} (a comparison, floor, astype(int), argmax, "
        "...), which its pathwise derivative cannot see, so the gradient would be biased. "
        f"{fix}, or make the cost continuous in it."
    )
    return kernels.require_path_derivative(total, None, params, message, refused=True, structural=False)


def stochastic(
    fn: Callable[..., Any],
    *,
    num_samples: int = 1,
    baseline: str | None = None,
    downstream: str = "traced",
    estimators=None,
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

    summed over costs i and the score nodes w ≺ i that cost i depends on, so each score term
    is weighted only by the costs downstream of it (Schulman et al.'s causality, reward-to-go
    for sequences; plates, elementwise). ``downstream="traced"`` (default) finds w ≺ i by
    tracing fn once with the nodes' samples as inputs: the nodes whose sample cost i's value
    is computed from, and their ancestors (nodes whose samples the distributions of those
    read), as numpyro's ``TraceGraph_ELBO`` does with provenance tracking. A cost that does
    not read a node gets no credit from it, wherever it is recorded.
    ``downstream="program_order"`` takes every node sampled before the cost was recorded
    (never fewer nodes, so never biased, only noisier; no extra trace). Its value is the Monte
    Carlo mean of the total cost; ``jax.grad``, ``jax.hessian``, ``jax.jvp`` of it estimate the
    derivatives of E[cost] without bias, with pathwise derivatives through the pathwise nodes
    and through the costs.

    Each run gets its own key, so randomness that is not a node (a noisy reward, a simulator)
    can be drawn from it inside fn. With one stochastic node and a noisy f, the transforms do
    the same with less machinery: ``rg.score_grad(f, dist, f_key=True)`` calls ``f(x, key_n)``
    with a key per sample.

    Args:
      fn: ``fn(params, key, *args) -> scalar cost or None``, calling ``rg.sample`` and
        ``rg.cost`` at its top level (not inside its own ``jax.vmap``/``lax.scan``; for a
        rollout inside ``lax.scan`` return the log-probabilities and costs and use ``rg.dice``).
      num_samples: N independent runs averaged (static).
      baseline: ``None`` or ``"loo"``: for each score node, the mean over the other N − 1 runs
        of the cost downstream of it (Loaded DiCE form; every order stays unbiased). Needs N ≥ 2.
      downstream: ``"traced"`` or ``"program_order"`` (see above). Tracing is done once, when
        the objective is traced; it reads ``jit``/``custom_jvp`` bodies, ``cond`` branches and
        ``scan``/``while`` loops, and counts any other operation's output as depending on all
        of its inputs (so it may over-credit, never under-credit).
      estimators: the estimator of each ``rg.sample(..., estimator="auto")`` node, in program
        order: a sequence of ``"pathwise"``/``"score"`` (``choice.estimator`` of
        ``rg.select_estimator(objective, ...)``), or a dict ``{index: estimator}``.

    Returns:
      ``objective(params, key, *args)``: the surrogate scalar. It carries ``num_samples``,
      ``estimators`` (the assignment of its auto nodes, or ``None``),
      ``with_estimators(estimators)`` (the same objective with another assignment; the same
      object for the same assignment, so a jitted step can be cached per assignment) and
      ``auto_nodes(params, key, *args)`` (its auto nodes, ``AutoNode``s, found by tracing
      ``fn`` once without computing anything).

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

      A node whose estimator a pilot run chooses (``rg.select_estimator``), or you assign:

      >>> def auto_model(theta, key):
      ...     z = rg.sample(key, rg.Normal(theta, 1.0), estimator="auto")
      ...     return jnp.cos(3.0 * z)
      >>> objective = rg.stochastic(auto_model, num_samples=16, baseline="loo")
      >>> [node.options for node in objective.auto_nodes(jnp.float32(0.3), jax.random.key(0))]
      [('pathwise', 'score')]
      >>> g = jax.grad(objective.with_estimators(["score"]))(jnp.float32(0.3), jax.random.key(0))

    References:
      Schulman, Heess, Weber & Abbeel, "Gradient Estimation Using Stochastic Computation
      Graphs", NeurIPS 2015 (arXiv:1506.05254).
      Foerster et al., "DiCE: The Infinitely Differentiable Monte Carlo Estimator", ICML 2018.
      Farquhar, Whiteson & Foerster, "Loaded DiCE", NeurIPS 2019 (arXiv:1909.10549).
      Wingate, Goodman, Stuhlmüller & Siskind, "Nonstandard Interpretations of Probabilistic
      Programs for Efficient Inference", NeurIPS 2011 (provenance tracking).
    """
    checks.check_callable(fn, "fn", "fn=lambda params, key: cost")
    assignment = _assignment(estimators)
    num_samples = checks.check_num_samples(num_samples)
    if baseline not in (None, "loo"):
        raise ValueError(f"baseline must be None or 'loo', got {baseline!r}.")
    if baseline == "loo":
        checks.check_num_samples(num_samples, 2, " for the loo baseline")
    if downstream not in DOWNSTREAM:
        raise ValueError(f"downstream must be one of {DOWNSTREAM}, got {downstream!r}.")
    return _objective(fn, num_samples, baseline, downstream, assignment, {})


def _assignment(estimators):
    """``estimators=`` as a tuple (an entry per auto node, ``None`` where a dict gives none), or None."""
    if estimators is None:
        return None
    if isinstance(estimators, str):
        raise TypeError(
            f"estimators= takes one estimator per auto node, e.g. estimators=({estimators!r},), got the "
            f"string {estimators!r}."
        )
    if isinstance(estimators, Mapping):
        bad = [i for i in estimators if isinstance(i, bool) or not isinstance(i, int) or i < 0]
        if bad:
            raise TypeError(f"estimators= as a dict maps auto-node indices (ints >= 0) to estimators, got keys {bad}.")
        out = [None] * (max(estimators, default=-1) + 1)
        for i, e in estimators.items():
            out[i] = e
    else:
        out = list(estimators)
    for e in out:
        if e is not None and e not in ("pathwise", "score"):
            raise ValueError(
                f"estimators= gives each auto node 'pathwise' or 'score', got {e!r}; "
                "rg.select_estimator(objective, params, key, *args) chooses them by a pilot run."
            )
    return tuple(out)


def _objective(fn, num_samples, baseline, downstream, assignment, cache):
    """The objective for one assignment of the auto nodes; ``cache`` (shared by every assignment
    of this fn) keeps one objective per assignment."""

    def objective(params, key, *args):
        checks.check_key(key)
        keys = jax.random.split(key, num_samples)
        seen: list = []
        value, surrogate, log_probs, credited = jax.vmap(
            lambda k: _run(fn, params, k, args, seen, downstream, assignment))(keys)
        total = jnp.mean(value) + jnp.mean(surrogate)
        if seen:  # pathwise nodes: is the cost continuous in each of them?
            total = _check_pathwise(total, fn, params, keys[0], args, seen, assignment)
        if baseline == "loo":
            for lp, d in zip(log_probs, credited, strict=True):
                b = _sg(_leave_one_out(d)).astype(lp.dtype)
                total = total + jnp.mean(jnp.sum(jnp.reshape(b * (1.0 - magic_box(lp)), (num_samples, -1)), 1)).astype(total.dtype)
        return total

    def with_estimators(estimators):
        """This objective with ``estimators`` for its auto nodes (one object per assignment)."""
        new = _assignment(estimators)
        if new not in cache:
            cache[new] = _objective(fn, num_samples, baseline, downstream, new, cache)
        return cache[new]

    def auto_nodes(params, key, *args) -> tuple[AutoNode, ...]:
        """The ``rg.sample(estimator="auto")`` nodes of fn, in program order, with the estimators
        that apply to each (fn is traced once; nothing is computed)."""
        checks.check_key(key)
        found: list = []

        def run(p, k, *a):
            found[:] = _record(fn, p, k, a, assignment=LIST_AUTO).auto
            return jnp.zeros(())

        jax.eval_shape(run, params, key, *args)
        return tuple(found)

    cache.setdefault(assignment, objective)
    name = getattr(fn, "__name__", "fn")
    objective.__name__ = objective.__qualname__ = f"stochastic_{name}"
    objective.__doc__ = f"DiCE surrogate of E[cost] of {name}(params, key, *args) over {num_samples} runs."
    objective.fn = fn
    objective.num_samples = num_samples
    objective.estimators = assignment
    objective.with_estimators = with_estimators
    objective.auto_nodes = auto_nodes
    return objective


def _leave_one_out(values):
    """The mean over the other runs (axis 0), element by element: a plate element's baseline
    is that element's downstream cost in the other runs."""
    return (jnp.sum(values, axis=0, keepdims=True) - values) / (values.shape[0] - 1)
