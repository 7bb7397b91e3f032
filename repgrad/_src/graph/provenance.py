"""Which inputs a function's outputs depend on, read off its jaxpr at trace time (provenance).

A stochastic computation graph weights a node's score term by the costs *downstream* of it
(Schulman et al., 2015). Program order over-approximates that set — a cost recorded after a
node need not depend on it — and every cost wrongly credited adds variance, never bias.
Tracing the program finds the costs whose value depends on the node's sample (the idea of
provenance tracking, Wingate et al., 2011, which numpyro's ``TraceGraph_ELBO`` uses too).

The analysis is sound (never misses a dependence): every primitive's outputs depend on all
of its inputs, except through call-like primitives, whose body is read instead (``jit``,
``custom_jvp``/``custom_vjp`` functions, ``remat``), ``cond`` (per branch, plus the
predicate) and ``scan``/``while`` (a fixpoint over the carry). Unlike the derivative analysis
of ``core/dependence.py``, ``stop_gradient`` and comparisons keep the dependence: a cost that
depends on a sample only through ``x > 0`` still depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
from jax.extend import core as jcore

_EMPTY: frozenset = frozenset()


def _sub_jaxpr(params):
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = params.get(name)
        if isinstance(sub, jcore.ClosedJaxpr):
            return sub.jaxpr
        if isinstance(sub, jcore.Jaxpr):
            return sub
    return None


def _read(env, v):
    return _EMPTY if isinstance(v, jcore.Literal) else env.get(v, _EMPTY)


def _union(sets):
    return frozenset().union(*sets)


def _run(jaxpr, ins):
    env: dict = {}
    for var, deps in zip(jaxpr.invars, ins, strict=True):
        env[var] = deps
    for eqn in jaxpr.eqns:
        outs = _rule(eqn, [_read(env, v) for v in eqn.invars])
        for var, deps in zip(eqn.outvars, outs, strict=True):
            env[var] = deps
    return [_read(env, v) for v in jaxpr.outvars]


def _rule(eqn, ins):
    name, n_out = eqn.primitive.name, len(eqn.outvars)
    if name == "cond":
        index, ops = ins[0], ins[1:]
        branches = [_run(b.jaxpr, ops) for b in eqn.params["branches"]]
        return [_union(outs) | index for outs in zip(*branches, strict=True)]
    if name == "while":
        p = eqn.params
        n_cond, n_body = p["cond_nconsts"], p["body_nconsts"]
        cond_consts, body_consts, carry = ins[:n_cond], ins[n_cond : n_cond + n_body], ins[n_cond + n_body :]
        pred = lambda c: _union(_run(p["cond_jaxpr"].jaxpr, list(cond_consts) + list(c)))
        step = lambda c: [d | pred(c) for d in _run(p["body_jaxpr"].jaxpr, list(body_consts) + list(c))]
        return _fixpoint(step, list(carry))
    if name == "scan":
        p = eqn.params
        n_consts, n_carry = p["num_consts"], p["num_carry"]
        consts, carry, xs = ins[:n_consts], ins[n_consts : n_consts + n_carry], ins[n_consts + n_carry :]
        run = lambda c: _run(p["jaxpr"].jaxpr, list(consts) + list(c) + list(xs))
        carry = _fixpoint(lambda c: run(c)[:n_carry], list(carry))
        return carry + run(carry)[n_carry:]
    sub = _sub_jaxpr(eqn.params)
    if sub is not None and len(sub.invars) == len(ins) and len(sub.outvars) == n_out:
        return _run(sub, ins)
    return [_union(ins)] * n_out


def _fixpoint(step, carry):
    while True:  # sets only grow, over finitely many inputs: this ends
        new = [c | s for c, s in zip(carry, step(carry), strict=True)]
        if new == carry:
            return carry
        carry = new


def provenance(fn: Callable, example_args: Sequence) -> list[frozenset]:
    """For each leaf of ``fn(*example_args)``'s output, the set of argument indices it depends on.

    Args:
      fn: traced once with ``jax.make_jaxpr`` (nothing is computed); it may close over
        tracers of enclosing transformations.
      example_args: arrays or ``jax.ShapeDtypeStruct``s (pytrees allowed); argument i's leaves
        are all labelled i.

    Returns:
      One ``frozenset`` of argument indices per output leaf, in ``tree_leaves`` order.
    """
    closed = jax.make_jaxpr(lambda *a: fn(*a))(*example_args)
    labels = [frozenset({i}) for i, arg in enumerate(example_args) for _ in jax.tree_util.tree_leaves(arg)]
    return _run(closed.jaxpr, labels)


def ancestors(parents: Sequence[frozenset]) -> list[frozenset]:
    """The transitive closure of ``parents`` (node i's distribution depends on nodes parents[i])."""
    closure = [set(p) for p in parents]
    changed = True
    while changed:
        changed = False
        for i, up in enumerate(closure):
            more = set().union(*(closure[j] for j in up if j != i)) - up - {i}
            if more:
                up |= more
                changed = True
    return [frozenset(c) for c in closure]


def downstream_of(deps: frozenset, closure: Sequence[frozenset]) -> frozenset:
    """The nodes a cost depends on: those its value reads, and every node their distributions
    depend on (a node's sample moves when an ancestor's does)."""
    return frozenset(deps).union(*(closure[i] for i in deps if i < len(closure)))
