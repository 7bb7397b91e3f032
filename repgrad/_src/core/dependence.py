"""How a function's output depends on its inputs, read off its jaxpr at trace time: through a
derivative (smooth), only through operations whose derivative is zero (piecewise constant), or
through a jump (a piecewise-constant term combined additively with the rest).

The pathwise estimator differentiates f along the samples, so it is unbiased only where f is
continuous; a comparison, ``floor`` or ``astype(int)`` on the path leaves a derivative of 0
while E[f] still moves. Structural zeros of JAX's own autodiff see only the all-or-nothing case
(no derivative at all, and only when nothing else is differentiated at the same time); this
reads the program instead, so it also sees ``w * (x > 0)`` differentiated together with ``w``,
``jnp.heaviside`` (whose NaN branch passes x through) and ``x[0] ** 2 + (x[1] > 0)``.

Lattice, per input ("source"): ``NONE`` (no dependence) < ``PIECEWISE`` (only through
zero-derivative operations) < ``SMOOTH`` (a derivative path) < ``JUMP`` (a smooth part plus an
additive piecewise-constant part, or a jump kept through later operations). Rules:

- outputs that are not floating point (comparisons, ``argmax``, integer casts) and ``floor``,
  ``ceil``, ``round``, ``sign`` are piecewise constant in whatever their inputs depend on;
- ``stop_gradient`` removes the dependence (a straight-through trick is the user's choice);
- ``x == c`` and ``x != c`` on a continuous x are constant almost everywhere, so selecting with
  them (``jnp.isnan`` guards, ``jnp.heaviside``'s NaN branch) keeps the a.e. branch only, and
  so does selecting with ``jnp.isfinite(x)`` (true a.e.);
- ``select_n``/``cond`` with a data-dependent predicate and constant cases is piecewise
  constant (``where(x > 0, 1., 0.)``), with a smooth case smooth (``where(x > 0, x, 0.)``);
- additive combinations (``add``, ``sub``, ``concatenate``, ``reduce_sum``, ...) of a
  piecewise-constant and a smooth operand are a jump; products are not (``x * (x > 0)`` is a
  ReLU, continuous);
- ``rem`` (``jnp.mod``, ``%``, ``jnp.fmod``) of a smoothly varying x is a jump (a sawtooth);
- a lookup with a data-dependent index into a constant table is piecewise constant;
- everything else (including ``custom_jvp``/``custom_vjp`` functions, whose derivative is
  user-declared) takes the largest state of its inputs.

The rules are conservative in one direction only: an unknown construct never *creates* a
piecewise or jump state, so the analysis can miss a discontinuity (``where(x > 0, x + 1, x)``)
but does not refuse a continuous f.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

NONE, PIECEWISE, SMOOTH, JUMP = 0, 1, 2, 3
NAMES = {NONE: "constant", PIECEWISE: "piecewise constant", SMOOTH: "smooth", JUMP: "jump"}

_ZERO_DERIVATIVE = {"floor", "ceil", "round", "sign", "nextafter", "is_finite"}
_ADDITIVE = {
    "add", "sub", "add_any", "concatenate", "pad", "reduce_sum", "cumsum", "dynamic_update_slice",
    "scatter-add", "scatter_add", "scatter", "select_and_scatter_add", "psum",
}
_LOOKUP = {"gather", "dynamic_slice"}  # operand first, then indices
_STOP = {"stop_gradient"}


def _mult(states):
    return max(states, default=NONE)


def _add(states):
    states = list(states)
    if JUMP in states or (PIECEWISE in states and SMOOTH in states):
        return JUMP
    return _mult(states)


def _kill(state):
    return NONE if state == NONE else PIECEWISE


def _combine(fn, per_input, num):
    """Applies a per-source join ``fn`` to the inputs' state tuples (``num`` sources)."""
    if not per_input:
        return (NONE,) * num
    return tuple(fn(col) for col in zip(*per_input, strict=True))


class _Env:
    def __init__(self, num_sources):
        self.n = num_sources
        self.states: dict = {}
        self.ae: dict = {}  # boolean vars constant almost everywhere: var -> its a.e. value

    def none(self):
        return (NONE,) * self.n

    def read(self, v):
        if isinstance(v, jcore.Literal):
            return self.none()
        return self.states.get(v, self.none())

    def write(self, v, state):
        self.states[v] = state


def _in(var, table) -> bool:
    return not isinstance(var, jcore.Literal) and var is not None and var in table


def _is_float(aval) -> bool:
    return jnp.issubdtype(aval.dtype, jnp.inexact)


def _sub_jaxpr(params):
    for name in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = params.get(name)
        if isinstance(sub, jcore.ClosedJaxpr):
            return sub.jaxpr
        if isinstance(sub, jcore.Jaxpr):
            return sub
    return None


def _run(jaxpr, in_states, num_sources, ae_in=None):
    env = _Env(num_sources)
    for var, state in zip(jaxpr.invars, in_states, strict=True):
        env.write(var, state)
    for var, value in (ae_in or {}).items():
        env.ae[var] = value
    for eqn in jaxpr.eqns:
        _step(env, eqn)
    return [env.read(v) for v in jaxpr.outvars]


def _step(env: _Env, eqn):
    name = eqn.primitive.name
    ins = [env.read(v) for v in eqn.invars]
    outs = _rule(env, eqn, name, ins)
    for var, state in zip(eqn.outvars, outs, strict=True):
        aval = var.aval
        if not hasattr(aval, "dtype"):
            state = env.none()
        elif not _is_float(aval) and not _in(var, env.ae):
            state = tuple(_kill(s) for s in state)  # no derivative through integers and booleans
        env.write(var, state)


def _rule(env: _Env, eqn, name, ins):
    n_out = len(eqn.outvars)
    if name in _STOP:
        return [env.none()] * n_out
    if name in ("eq", "ne") and _continuous_comparison(eqn, ins):
        # x == c is false almost everywhere and x != c true, but x == x (not NaN) is true and
        # x != x (jnp.isnan) false.
        same = eqn.invars[0] is eqn.invars[1]
        env.ae[eqn.outvars[0]] = same if name == "eq" else not same
        return [env.none()]
    if name == "is_finite" and _continuous_comparison(eqn, ins):
        env.ae[eqn.outvars[0]] = True  # a continuous x is finite almost everywhere
        return [env.none()]
    if name == "not" and _in(eqn.invars[0], env.ae):
        env.ae[eqn.outvars[0]] = not env.ae[eqn.invars[0]]
        return [env.none()]
    if name == "rem":  # x mod c = x − c·trunc(x/c): a sawtooth, smooth between its jumps
        return [tuple(JUMP if a in (SMOOTH, JUMP) else _mult((a, b)) for a, b in zip(*ins, strict=True))]
    if name in _ZERO_DERIVATIVE:
        return [tuple(_kill(s) for s in _combine(_mult, ins, env.n))] * n_out
    if name == "select_n":
        return [_select(env, eqn.invars[0], ins[0], ins[1:])]
    if name in _ADDITIVE:
        return [_combine(_add, ins, env.n)] * n_out
    if name in _LOOKUP:
        return [_lookup(ins[0], ins[1:], env.n)]
    if name == "cond":
        return _cond(env, eqn, ins)
    if name == "while":
        return _while(env, eqn, ins)
    if name == "scan":
        return _scan(env, eqn, ins)
    if name not in ("custom_jvp_call", "custom_vjp_call"):  # their derivative is user-declared
        sub = _sub_jaxpr(eqn.params)
        if sub is not None and len(sub.invars) == len(ins) and len(sub.outvars) == n_out:
            ae = {inner: env.ae[outer] for inner, outer in zip(sub.invars, eqn.invars, strict=True) if _in(outer, env.ae)}
            return _run(sub, ins, env.n, ae)
    return [_combine(_mult, ins, env.n)] * n_out


def _continuous_comparison(eqn, ins):
    """x == c on floats that depend on a source only smoothly: a.e. constant."""
    floats = all(hasattr(v.aval, "dtype") and _is_float(v.aval) for v in eqn.invars)
    states = [s for state in ins for s in state]
    return floats and SMOOTH in states and PIECEWISE not in states and JUMP not in states


def _select(env: _Env, pred_var, pred, cases):
    if _in(pred_var, env.ae):  # e.g. jnp.isnan(x): the False case almost everywhere
        return cases[1 if env.ae[pred_var] else 0]
    out = []
    for p, *cs in zip(pred, *cases, strict=True):
        if SMOOTH in cs or JUMP in cs:
            out.append(JUMP if (PIECEWISE in cs or JUMP in cs) else SMOOTH)
        elif PIECEWISE in cs or p != NONE:
            out.append(PIECEWISE)  # where(x > 0, 1., 0.): constants chosen by the data
        else:
            out.append(NONE)
    return tuple(out)


def _lookup(operand, indices, num):
    index = _combine(_mult, indices, num)
    return tuple(o if o != NONE else _kill(i) for o, i in zip(operand, index, strict=True))


def _cond(env: _Env, eqn, ins):
    index, ops = ins[0], ins[1:]
    branch_outs = [_run(b.jaxpr, ops, env.n) for b in eqn.params["branches"]]
    out = []
    for per_branch in zip(*branch_outs, strict=True):
        out.append(_select(env, None, index, list(per_branch)))
    return out


def _fixpoint(step, carry):
    for _ in range(16):
        new = [_combine(_mult, [c, s], len(c)) for c, s in zip(carry, step(carry), strict=True)]
        if new == carry:
            return carry
        carry = new
    return [tuple(JUMP if s != NONE else NONE for s in c) for c in carry]


def _while(env: _Env, eqn, ins):
    p = eqn.params
    body, n_cond, n_body = p["body_jaxpr"].jaxpr, p["cond_nconsts"], p["body_nconsts"]
    consts, carry = ins[n_cond : n_cond + n_body], ins[n_cond + n_body :]
    return _fixpoint(lambda c: _run(body, list(consts) + list(c), env.n), list(carry))


def _scan(env: _Env, eqn, ins):
    p = eqn.params
    body, n_consts, n_carry = p["jaxpr"].jaxpr, p["num_consts"], p["num_carry"]
    consts, carry, xs = ins[:n_consts], ins[n_consts : n_consts + n_carry], ins[n_consts + n_carry :]
    run = lambda c: _run(body, list(consts) + list(c) + list(xs), env.n)
    carry = _fixpoint(lambda c: run(c)[:n_carry], list(carry))
    return carry + run(carry)[n_carry:]


def dependence(fn: Callable, example_args: Sequence, sources: Sequence[int]) -> tuple[int, ...] | None:
    """The state of ``fn(*example_args)``'s (first, scalar) output with respect to each source.

    Args:
      fn: the function, traced once with ``jax.make_jaxpr`` (nothing is computed).
      example_args: arrays or ``jax.ShapeDtypeStruct``s (pytrees allowed).
      sources: for each of ``example_args``, the source index its leaves count as, or ``-1``
        for an argument that is not a source.

    Returns:
      One state per source (``NONE``, ``PIECEWISE``, ``SMOOTH``, ``JUMP``), or ``None`` when the
      function could not be analysed (callers then fall back to JAX's structural zeros).
    """
    num = max(sources, default=-1) + 1
    try:
        closed = jax.make_jaxpr(lambda *a: fn(*a))(*example_args)
    except Exception:  # an f that cannot be traced on its own here: no verdict, no false alarm
        return None
    in_states = []
    for arg, src in zip(example_args, sources, strict=True):
        for _ in jax.tree_util.tree_leaves(arg):
            in_states.append(tuple(SMOOTH if (j == src) else NONE for j in range(num)))
    jaxpr = closed.jaxpr
    if len(jaxpr.invars) != len(in_states) or not jaxpr.outvars:
        return None
    try:
        out = _run(jaxpr, in_states, num)
    except Exception:  # an unfamiliar jaxpr construct: no verdict rather than a false alarm
        return None
    return out[0]


def in_samples(f: Callable, x, args: Sequence, key=None) -> int | None:
    """The state of ``f(x_n, key, *args)`` in one sample ``x_n`` (``x`` stacked on axis 0),
    ``None`` when f could not be analysed. f's key and arguments are held fixed."""
    one = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a)[1:], jnp.result_type(a)), x)
    out = dependence(lambda xi: f(xi, key, *args), (one,), (0,))
    return None if out is None else out[0]
