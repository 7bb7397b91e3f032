"""Argument checks for the built-in families (``validate_args=``).

A family states its parameters' constraints as :class:`Rule` values, checked at construction:

- values known now — Python numbers, NumPy and concrete JAX arrays, and also the parameters
  inside an un-jitted ``jax.grad``/``jax.jvp`` (including the one inside the transforms) —
  raise ``ValueError`` naming the parameter, the offending value and how to keep it valid,
  unless ``validate_args=False``. This costs a host read of the parameters at construction
  and nothing else.
- traced values (under ``jax.jit``, ``jax.vmap``, ``lax.scan``, ...) are checked only with
  ``validate_args=True``, at run time, as ``equinox.error_if`` does: the compiled program
  evaluates the rules to one boolean, and ``lax.cond`` calls back to Python
  (``jax.debug.callback``) only where it is False; the callback raises the same
  ``ValueError`` as the concrete check (message, offending value and its index). jax reports
  it when the call runs, as a ``jax.errors.JaxRuntimeError`` carrying that message (or as the
  ``ValueError`` itself, depending on its dispatch path), after logging the callback's
  traceback. It works under ``jax.grad`` and higher derivatives (the check reads the values,
  not their tangents), ``lax.scan``/``lax.cond``, and:

  - ``jax.vmap``: one check for the whole batch (a ``custom_vmap`` rule reduces the
    predicate over the mapped axis, and the callback sees the batched values). Otherwise the
    ``cond`` would become a select and the callback would be unrolled once per batch entry.
  - sharded parameters over several devices: every device runs the callback on its own
    shard (``partitioned=True``), so all of them stop at the same point; the index in the
    message is then within the reporting device's shard. A callback on one device only
    left the others waiting at the next collective until XLA aborted the process.

  The callback is an effect: a jitted function containing it leaves jax's fast C++ dispatch
  path, about 0.3 ms more per call of a jitted ``pathwise_grad`` of a Normal (0.03 → 0.33 ms
  on the 2-core CPU container under load; the ``checkify.debug_check`` used before cost 0.4 ms
  there and was silent unless the call was wrapped in ``checkify.checkify``). Effects are
  never removed as dead code, so the check runs whether or not the parameters reach the
  result. Inside ``checkify.checkify`` the call raises in the same way (``err`` is not
  involved). On TPUs the callback runs on one device (TPUs do not run partitioned
  callbacks).

The default, ``validate_args=None`` (:data:`VALIDATE_ARGS`), is the free part: concrete
checks only, nothing added to traced programs. distrax and TFP default to ``False`` (their
checks add assertions to traced programs); torch.distributions validates by default. Shapes
are static, so parameters whose shapes do not broadcast always raise ``ValueError``
(``base._broadcast_params``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["VALIDATE_ARGS", "Rule", "check", "finite", "positive", "unit_interval"]

# The default of every family's ``validate_args``: check the values known at construction (free),
# leave traced ones alone (validate_args=True checks them at run time). See above.
VALIDATE_ARGS = None

_SKIP = "pass validate_args=False to skip this check"


class Rule(NamedTuple):
    """A constraint on one or more parameters.

    ``valid(xp, *values)`` returns a boolean array, True where the constraint holds; ``xp`` is
    ``numpy`` for concrete values and ``jax.numpy`` for traced ones.
    """

    names: tuple[str, ...]
    valid: Callable
    requirement: str
    fix: str


def positive(name: str) -> Rule:
    """``name`` > 0 and finite (scales, rates, concentrations)."""
    return Rule(
        (name,),
        lambda xp, v: xp.isfinite(v) & (v > 0),
        f"{name} must be positive and finite",
        f"parameterize it as jax.nn.softplus(raw) or jnp.exp(log_{name}) so that it stays positive",
    )


def finite(name: str) -> Rule:
    """``name`` has no NaN or infinity (locations)."""
    return Rule(
        (name,),
        lambda xp, v: xp.isfinite(v),
        f"{name} must be finite",
        "look for a NaN or an overflow upstream (jax.config.update('jax_debug_nans', True) finds it)",
    )


def unit_interval(name: str, unconstrained: str) -> Rule:
    """``name`` lies in [0, 1] (probabilities)."""
    return Rule(
        (name,),
        lambda xp, v: (v >= 0) & (v <= 1),
        f"{name} must lie in [0, 1]",
        f"pass {unconstrained} (any real number) instead, or map a real parameter into [0, 1] "
        "with jax.nn.sigmoid / jax.nn.softmax",
    )


def _concrete(value):
    """A float64 NumPy copy of a value known now, or None (e.g. an array spread over processes)."""
    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        return None
    return np.asarray(value).astype(np.float64)


def _describe(bad, values) -> str:
    """The first offending value(s), with their index when there are several entries."""
    elementwise = np.broadcast_shapes(*(np.shape(v) for v in values)) == bad.shape
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    shown = (
        ", ".join(f"{float(np.broadcast_to(v, bad.shape)[idx]):.6g}" for v in values)
        if elementwise
        else "an invalid value"
    )
    if bad.size == 1:
        return f"got {shown}"
    return f"got {shown} at index {idx} ({int(np.sum(bad))} of {bad.size} entries invalid)"


def _message(family: str, rule: Rule, got: str) -> str:
    return f"{family}: {rule.requirement}; {got}. Fix: {rule.fix}, or {_SKIP}."


def _first_violation(family: str, rules, concrete: dict) -> str | None:
    """The message for the first rule that ``concrete`` (name → float64 NumPy array) breaks."""
    for rule in rules:
        args = [concrete[n] for n in rule.names]
        with np.errstate(invalid="ignore"):
            bad = ~np.asarray(rule.valid(np, *args), bool)
        if np.any(bad):
            return _message(family, rule, _describe(bad, args))
    return None


def _describe_local(family: str, rules, names, shapes, host) -> str:
    """The concrete check's message for the values a device holds (its shard when sharded)."""
    concrete = {n: np.asarray(a).astype(np.float64) for n, a in zip(names, host, strict=True)}
    message = _first_violation(family, rules, concrete)
    if message is None:  # this device's shard is valid: another device's is not
        requirements = "; ".join(r.requirement for r in rules)
        fixes = "; ".join(r.fix for r in rules)
        return f"{family}: {requirements}; got an invalid value on another device. Fix: {fixes}, or {_SKIP}."
    if any(np.shape(a) != s for a, s in zip(host, shapes, strict=True)):
        message += " (The index is within this device's shard.)"
    return message


def _run_time_check(family: str, rules, names):
    """``report(ok, *values)``: nothing where ``ok``; else a host callback that raises the
    ``ValueError`` of the concrete check for ``values`` (see the module docstring)."""

    def raise_if_invalid(shapes, ok, *host):
        if not np.all(ok):
            raise ValueError(_describe_local(family, rules, names, shapes, host))

    # partitioned: every device runs the callback on its own shard, so all of them stop at
    # the same point (with only device 0 raising, the others wait for it at the next
    # collective until XLA aborts the process). TPUs do not run partitioned callbacks.
    partitioned = jax.default_backend() != "tpu"

    @jax.custom_batching.custom_vmap
    def report(ok, *values):
        def fail(values):
            shapes = tuple(jnp.shape(v) for v in values)
            jax.debug.callback(functools.partial(raise_if_invalid, shapes), ok, *values, partitioned=partitioned)

        jax.lax.cond(ok, lambda values: None, fail, values)
        return ok

    # Under vmap, one check of the whole batch: a batched predicate would turn the cond into
    # a select (the callback on every call, unrolled once per batch entry).
    @report.def_vmap
    def report_vmap(axis_size, in_batched, ok, *values):
        return report(jnp.all(ok) if in_batched[0] else ok, *values), False

    return report


def _check_at_run_time(family: str, rules, values: dict) -> None:
    names = tuple(dict.fromkeys(n for rule in rules for n in rule.names))
    args = {n: jax.lax.stop_gradient(values[n]) for n in names}
    ok = jnp.array(True)
    for rule in rules:
        ok = ok & jnp.all(rule.valid(jnp, *(args[n] for n in rule.names)))
    _run_time_check(family, tuple(rules), names)(ok, *args.values())


def check(family: str, validate_args: bool | None, rules, values: dict) -> None:
    """Checks ``values`` (parameter name → array) against ``rules``.

    ``validate_args``: ``None`` raises ``ValueError`` for values known now; ``True`` also checks
    traced ones at run time; ``False`` checks nothing.
    """
    if validate_args is False:
        return
    traced = []
    for rule in rules:
        # The values themselves: stop_gradient drops eager autodiff tracers (jax.grad,
        # jax.jvp and jax.hessian outside jit), leaving concrete arrays there.
        args = [jax.lax.stop_gradient(values[n]) for n in rule.names]
        if any(isinstance(a, jax.core.Tracer) for a in args):
            if validate_args is True:
                traced.append(rule)
            continue
        concrete = [_concrete(a) for a in args]
        if any(c is None for c in concrete):
            continue
        message = _first_violation(family, (rule,), dict(zip(rule.names, concrete, strict=True)))
        if message is not None:
            raise ValueError(message)
    if traced:
        _check_at_run_time(family, traced, values)
