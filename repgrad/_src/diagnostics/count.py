"""Counting evaluations of f inside an estimator, from its jaxpr.

``counted(f)`` marks f: its forward evaluation is a ``jit`` named ``_repgrad_f`` and
every derivative of f (the vector-Jacobian or Jacobian-vector product an estimator
pulls through f) is a ``jit`` named ``_repgrad_df``. ``count_calls`` traces a function
built on the marked f with ``jax.make_jaxpr`` (nothing is compiled or run) and adds up,
for each marked equation, how many per-sample calls it stands for: the size of its
batched output (vmap adds the sample axes) divided by the size of one call's output,
times the trip counts of the enclosing ``scan``/``map`` loops. Loops of unknown length
(``while``) make the count a lower bound, reported with ``exact=False``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

F_NAME = "_repgrad_f"
DF_NAME = "_repgrad_df"
_TRACE_LOG: list | None = None  # per-call x shapes seen while ``count_calls`` traces


class CallCount(NamedTuple):
    """Per-sample calls of a marked f in one call of a traced function.

    Attributes:
      f_evals: forward evaluations of f (per sample).
      grad_evals: derivative passes through f (vector-Jacobian or Jacobian-vector
        products, per sample); 0 for estimators that only evaluate f.
      exact: False when a loop of unknown trip count (``while``) encloses a call, so
        the counts are lower bounds.
    """

    f_evals: int
    grad_evals: int
    exact: bool = True


def counted(f):
    """Marks ``f(x)`` so that ``count_calls`` can count its evaluations and derivatives.

    The marked function computes the same values and derivatives as ``f`` (first and
    higher order, forward and reverse mode). Use it only to build the function you
    trace for counting: the markers are named ``jit`` calls, harmless but not free to
    compile, so time the unmarked estimator.

    Args:
      f: ``f(x)`` of one argument (a pytree); close over any other arguments.

    Returns:
      The marked function.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> from repgrad.diagnostics import counted, count_calls
      >>> grad_fn = rg.pathwise_grad(counted(jnp.cos), lambda p: rg.Normal(p, 1.0), num_samples=8)
      >>> count_calls(grad_fn, jnp.float32(0.5), jax.random.key(0))
      CallCount(f_evals=8, grad_evals=8, exact=True)
    """
    def _repgrad_f(x):
        return f(x)

    forward = jax.jit(_repgrad_f)

    @jax.custom_jvp
    def marked(x):
        return forward(x)

    @marked.defjvp
    def _jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        y, lin = jax.linearize(f, x)

        def _repgrad_df(t):
            return lin(t)

        return forward(x), jax.jit(_repgrad_df)(t)

    def wrapper(x):
        leaves = jax.tree_util.tree_leaves(x)
        if _TRACE_LOG is not None:
            _TRACE_LOG.append([tuple(jnp.shape(a)) for a in leaves])
        if not all(jnp.issubdtype(jnp.result_type(a), jnp.inexact) for a in leaves):
            return forward(x)  # discrete samples: no derivative flows through f
        return marked(x)

    return wrapper


def _size(aval) -> int:
    return math.prod(getattr(aval, "shape", ()))


def _subjaxprs(eqn):
    for value in eqn.params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if hasattr(v, "jaxpr") and hasattr(v, "consts"):
                yield v.jaxpr
            elif hasattr(v, "eqns"):
                yield v


def _walk(jaxpr, multiplier, x_shapes, totals):
    for eqn in jaxpr.eqns:
        name = eqn.params.get("name", "") if eqn.primitive.name in ("jit", "pjit") else ""
        if name == F_NAME and eqn.outvars:
            # f returns a scalar (or (scalar, aux)) per call: first output's size = calls.
            totals["f"] += multiplier * _size(eqn.outvars[0].aval)
            continue
        if name == DF_NAME:
            outs = [v.aval for v in eqn.outvars]
            if not outs:
                continue  # the residual half of a split linearization; dropped by XLA
            total = sum(_size(a) for a in outs)
            # Reverse mode (transposed): one cotangent per leaf of x, x-shaped per call.
            # Forward mode: the tangent of f's scalar, one element per call.
            reverse = len(outs) == len(x_shapes) and all(
                tuple(a.shape[a.ndim - len(s) :]) == s for a, s in zip(outs, x_shapes, strict=True)
            )
            per_call = sum(math.prod(s) for s in x_shapes) if reverse else 1
            totals["df"] += multiplier * (total // max(per_call, 1))
            continue
        inner = multiplier
        if eqn.primitive.name == "scan":
            inner = multiplier * int(eqn.params["length"])
        elif eqn.primitive.name == "while":
            totals["exact"] = False
        elif eqn.primitive.name == "cond":  # one branch runs: count the costliest
            branch_totals = []
            for sub in _subjaxprs(eqn):
                t = {"f": 0, "df": 0, "exact": totals["exact"]}
                _walk(sub, inner, x_shapes, t)
                branch_totals.append(t)
            for name_ in ("f", "df"):
                totals[name_] += max((t[name_] for t in branch_totals), default=0)
            totals["exact"] = all(t["exact"] for t in branch_totals) and totals["exact"]
            continue
        for sub in _subjaxprs(eqn):
            _walk(sub, inner, x_shapes, totals)


def count_calls(fn, *args, **kwargs) -> CallCount:
    """Counts per-sample calls of the ``counted`` f inside ``fn(*args, **kwargs)``.

    Traces ``fn`` with ``jax.make_jaxpr`` (no compilation, no FLOPs) and reads the
    batch shapes of the marked calls; see the module docstring.

    Returns:
      ``CallCount(f_evals, grad_evals, exact)``; zeros if ``fn`` calls no marked f.
    """
    global _TRACE_LOG
    previous, _TRACE_LOG = _TRACE_LOG, []
    try:
        jaxpr = jax.make_jaxpr(lambda *a: fn(*a, **kwargs))(*args)
        seen = _TRACE_LOG
    finally:
        _TRACE_LOG = previous
    x_shapes = seen[0] if seen else [()]
    totals = {"f": 0, "df": 0, "exact": True}
    _walk(jaxpr.jaxpr, 1, x_shapes, totals)
    return CallCount(int(totals["f"]), int(totals["df"]), bool(totals["exact"]))
