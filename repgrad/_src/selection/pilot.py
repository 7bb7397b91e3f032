r"""The pilot run behind ``select_estimator``: compile the trials within a budget, measure them
interleaved on the same keys, rank them by variance × time and choose.

A *trial* is one way of computing the gradient: an estimator for ``rg.grad(f, dist, ...)``
(``select.py``) or an assignment of the auto nodes of an ``rg.stochastic`` graph (``graph.py``).
Both are ranked alike:

1. **Compilation**, in the trials' order, each compiled once and cached (a bounded LRU cache
   keyed on what defines the gradient), so that re-selecting later (e.g. every K training
   steps) does not compile again. What is not compiled within ``COMPILE_SHARE`` of the budget
   is excluded, saying so (and, when tracing alone shows it would not apply, why). A trial
   that raises at trace time (``TypeError``, ``ValueError``, ``NotImplementedError``, of which
   ``rg.ZeroGradientError`` and ``rg.DerivativeOrderError``) is excluded with its message.
2. **Too costly**: the slowest trials are dropped until ``min_replicates`` gradients of each
   of the rest fit in what is left of the budget.
3. **Measurement** (``repgrad.diagnostics``): R gradients per trial from the same R keys, the
   calls interleaved round robin, until R rounds or the budget (at least ``min_replicates``).
4. **Ranking** (``choose``): variance × time with each trial's ratio to the best and a 95%
   bootstrap interval; NaN or infinite estimates are never chosen; biased trials are ranked by
   MSE × time against the lowest-variance unbiased trial; among the trials whose interval
   reaches the best one's value, the one with the lowest time per gradient is chosen.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from ..core.kernels import ZeroGradientError
from ..diagnostics.compare import tabulate
from ..diagnostics.measure import measure
from ..diagnostics.table import ComparisonTable, _fmt_time

COMPILE_SHARE = 0.6  # of budget_s: no new compilation starts after it
CACHE_SIZE = 256  # compiled trials kept (least recently used dropped first)
_CACHE: collections.OrderedDict = collections.OrderedDict()
REFUSALS = (TypeError, ValueError, NotImplementedError)  # what a trial raises at trace time when it does not apply


class Selection(NamedTuple):
    """What ``select_estimator`` chose, and why.

    Attributes:
      estimator: the chosen ``Estimator``, usable as is in ``rg.grad``, ``rg.value_and_grad`` and
        ``rg.expectation`` and under ``jax.jit``; the same value (the same object) each time
        the same candidate is chosen, so it can key a cache of jitted steps. For an
        ``rg.stochastic`` graph: the assignment of its auto nodes, a tuple of ``"pathwise"`` /
        ``"score"`` in program order (``rg.stochastic(fn, estimators=choice.estimator)``).
      label: its label in the table (``"score:loo"``, ``"pathwise+delta"``; for a graph the
        assignment, ``"pathwise,score"``).
      num_samples: the samples per gradient it was compared at.
      table: the ``ComparisonTable`` of every candidate measured (per-parameter rows; per
        estimator: Σ variance ± SE, compiled time per gradient, f / ∇f evaluations, variance ×
        time and its ratio to the best with a 95% interval), with the excluded candidates and
        their reasons, and the pilot's cost, in its notes.
      reason: one sentence a person can read.
      excluded: ``((label, reason), ...)`` of the candidates not measured.
      pilot_s: wall seconds of the pilot, compilation included.
      compile_s: of which compiling (0 when every candidate was cached).
      objective: for a graph, the objective with the chosen assignment (the same object each
        time the same assignment is chosen); ``None`` otherwise.
      nodes: for a graph, one ``NodeChoice`` per auto node: its estimator, those that applied,
        and why the other did not; ``()`` otherwise.
    """

    estimator: Any
    label: str
    num_samples: int
    table: ComparisonTable
    reason: str
    excluded: tuple
    pilot_s: float
    compile_s: float
    objective: Callable | None = None
    nodes: tuple = ()

    def __str__(self) -> str:
        text = f"{self.table}\n\nchoice: {self.label} (num_samples={self.num_samples}). {self.reason}"
        for node in self.nodes:
            text += f"\n  {node}"
        return text


class Trial(NamedTuple):
    """One way of computing the gradient, as the pilot sees it.

    Attributes:
      label: its name in the table.
      biased: ranked by MSE against an unbiased reference.
      key: what defines its compiled gradient (hashable; ``None``: not cached).
      build: ``build() -> grad_fn(params, key, *args)``, the gradient (a pytree like params).
      count: optional ``count(params, key, args) -> CallCount | None``: f / ∇f evaluations.
    """

    label: str
    biased: bool
    key: Any
    build: Callable[[], Callable]
    count: Callable | None = None


class Result(NamedTuple):
    """What ``run`` measured: the table, the choice and what it cost."""

    table: ComparisonTable
    label: str
    reason: str
    excluded: list
    compile_s: float
    seconds: float


def signature(params, args):
    """The shapes, dtypes and weak types a compiled trial is specialized to (what ``jax.jit`` retraces on)."""
    return jax.tree_util.tree_structure((params, args)), tuple(
        (np.shape(x), str(jax.numpy.result_type(x)), bool(getattr(x, "weak_type", False)))
        for x in jax.tree_util.tree_leaves((params, args)))


def strong(params):
    """``params`` with weakly typed arrays made strong (same dtype): ``jnp.full(3, 2.5)`` is weak, the
    same parameters after an optimizer step are not, and ``jax.jit`` would compile every candidate
    again for them; the pilot compiles for the strong form only."""
    def fix(x):
        return jax.numpy.asarray(x, x.dtype) if isinstance(x, jax.Array) and x.weak_type else x

    return jax.tree_util.tree_map(fix, params)


def why(error) -> str:
    """One line of a refusal, saying what kind it is."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text if len(text) <= 200 else text[:197] + "..."
    if isinstance(error, ZeroGradientError):
        return "no path derivative: " + text
    return text


def _entry(trial: Trial):
    """{grad_fn, jitted, counts, compiled} of a trial, from the LRU cache when its key is hashable."""
    key = trial.key
    try:
        hash(key)
    except TypeError:  # an unhashable f or dist: no cache
        key = None
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    g = trial.build()
    entry = {"grad_fn": g, "jitted": jax.jit(g), "counts": {}, "compiled": set()}
    if key is not None:
        _CACHE[key] = entry
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return entry


def run(trials, params, key, args, *, budget_s: float, num_replicates: int, min_replicates: int, start: float,
        clock=time.perf_counter, progress=None, exact=None, num_samples=None, title: str = "",
        note_excluded=()) -> Result:
    """Compiles, measures and ranks ``trials`` (see the module docstring).

    Args:
      trials: ``Trial``s, in compilation order.
      params, key, args: the gradient's arguments; replicate r uses the r-th of
        ``jax.random.split(key, R)``.
      budget_s: seconds for this run, counted from ``start`` (a ``clock()`` reading).
      num_replicates, min_replicates: R at most, and the fewest the budget may cut it to.
      clock, progress: the time source and an optional ``progress(done, total, label)``.
      exact: the exact gradient for the table's bias column, or None.
      num_samples: N per trial for the table (an int for all, or None).
      title: the table's heading.
      note_excluded: ``(label, reason)`` pairs excluded before the run, listed in the notes.

    Returns:
      A ``Result``; ``ValueError`` when no trial applies or every one returns NaN.
    """
    excluded = list(note_excluded)
    params = strong(params)
    sig = signature(params, args)
    ready, compile_s, warm, first_call_s = [], 0.0, {}, {}
    for i, t in enumerate(trials):
        if progress is not None:
            progress(i, len(trials), f"compiling {t.label}")
        try:
            entry = _entry(t)
        except REFUSALS as e:  # e.g. RELAX's ψ: no default
            excluded.append((t.label, why(e)))
            continue
        if sig not in entry["compiled"] and clock() - start > COMPILE_SHARE * budget_s:
            try:  # no time to compile it; trace it (cheaper) to say whether it would apply
                jax.eval_shape(entry["grad_fn"], params, key, *args)
            except REFUSALS as e:
                excluded.append((t.label, why(e)))
                continue
            excluded.append((t.label, f"not compiled within {COMPILE_SHARE:.0%} of budget_s={budget_s:g} s "
                                      "(raise budget_s, or pass candidates=)"))
            continue
        t0 = clock()
        try:
            jax.block_until_ready(entry["jitted"](params, key, *args))
        except REFUSALS as e:
            excluded.append((t.label, why(e)))
            continue
        first_call_s[t.label] = 0.0
        if sig not in entry["compiled"]:
            entry["compiled"].add(sig)
            first_call_s[t.label] = clock() - t0
            compile_s += first_call_s[t.label]
        t0 = clock()
        jax.block_until_ready(entry["jitted"](params, key, *args))
        warm[t.label] = clock() - t0
        ready.append((t, entry))
    if progress is not None:
        progress(len(trials), len(trials), "compiled")
    # Too costly for the budget: drop the slowest until min_replicates rounds of the rest fit.
    left = budget_s - (clock() - start)
    while len(ready) > 1 and min_replicates * sum(warm[t.label] for t, _ in ready) > max(left, 0.0):
        slowest = max(ready, key=lambda te: warm[te[0].label])
        ready.remove(slowest)
        t = slowest[0]
        excluded.append((t.label, f"too costly for budget_s={budget_s:g} s: {_fmt_time(warm[t.label])} per gradient, "
                                  f"{min_replicates} gradients would not fit (e.g. measure-valued with many coordinates)"))
    if not ready:
        raise ValueError("No candidate applies here: " + "; ".join(f"{label}: {w}" for label, w in excluded))
    unbiased = [t for t, _ in ready if not t.biased]
    if not unbiased:
        raise ValueError(
            "Only biased candidates apply here, and biased estimators are ranked by MSE against an unbiased "
            "reference; add an unbiased candidate (e.g. 'score:loo')."
        )
    fns = {t.label: e["grad_fn"] for t, e in ready}
    m = measure(fns, params, key, *args, num_replicates=num_replicates, vectorize=False, clock=clock,
                progress=progress, budget_s=max(budget_s - (clock() - start), 0.0),
                min_replicates=min(min_replicates, num_replicates), jitted={t.label: e["jitted"] for t, e in ready})
    reference = _reference(m, unbiased) if any(t.biased for t, _ in ready) else None
    calls = {}
    for t, e in ready:
        if t.count is not None and sig not in e["counts"]:
            try:
                e["counts"][sig] = t.count(params, key, args)
            except REFUSALS:
                e["counts"][sig] = None
        calls[t.label] = e["counts"].get(sig)
    seconds = clock() - start
    table = tabulate(m, params, calls=calls, exact=exact, num_samples=dict.fromkeys(fns, num_samples), title=title,
                     biased=[t.label for t, _ in ready if t.biased], reference=reference,
                     notes=[f"excluded {label}: {w}" for label, w in excluded], seconds=seconds)
    # Compilation time per trial: of this pilot (0 where the cache had it compiled already).
    table = table._replace(summary=tuple(x._replace(compile_s=first_call_s[x.estimator]) for x in table.summary))
    suspects = disagreeing([t.label for t in unbiased], m)
    for lab, z, others in suspects:
        table = table._replace(notes=tuple(table.notes) + (
            f"not chosen {lab}: its mean disagrees with {others} (up to {z:.3g} SE); an unbiased estimator "
            "cannot, so it is biased on this problem (a discontinuity it cannot see, or rounding)",))
    label, reason = choose(table, reference, skip={lab for lab, _, _ in suspects})
    if m.stopped == "budget":
        reason += f" (budget_s cut the pilot to {m.replicates} of {num_replicates} gradients per candidate)"
    return Result(table, label, reason, excluded, compile_s, seconds)


AGREEMENT_Z = 6.0  # per coordinate and pair: a false alarm is rare even over many coordinates


def _flat(m, label):
    leaves = jax.tree_util.tree_leaves(m.grads[m.labels.index(label)])
    return np.concatenate([np.asarray(x, np.float64).reshape(m.replicates, -1) for x in leaves], axis=1)


def disagreeing(labels, m):
    """The unbiased candidates whose mean gradient differs, beyond ``AGREEMENT_Z`` standard
    errors, from most of the others': ``(label, largest z, "a, b")`` each.

    Unbiased estimators agree in expectation, so a candidate that stands apart is biased here:
    e.g. pathwise through a discontinuity the trace-time checks missed, or a gradient that
    rounding set to 0. Its low variance must not win. Needs at least two others to outvote it.
    """
    stats = {}
    for lab in labels:
        flat = _flat(m, lab)
        mean = np.mean(flat, axis=0)
        se = np.std(flat, axis=0, ddof=1) / math.sqrt(m.replicates)
        if np.all(np.isfinite(mean)) and np.all(np.isfinite(se)):
            stats[lab] = (mean, se)
    out = []
    for lab, (mean, se) in stats.items():
        others = [o for o in stats if o != lab]
        if len(others) < 2:
            continue
        zs = {}
        for o in others:
            mo, so = stats[o]
            rounding = 1e-4 * (np.abs(mean) + np.abs(mo)) + 1e-7  # exact estimators differ by rounding
            zs[o] = float(np.max(np.abs(mean - mo) / np.sqrt(se**2 + so**2 + rounding**2)))
        apart = [o for o, z in zs.items() if z > AGREEMENT_Z]
        if 2 * len(apart) > len(others):
            out.append((lab, max(zs[o] for o in apart), ", ".join(apart)))
    return out


def _reference(m, unbiased) -> str:
    """The unbiased trial with the lowest finite variance: the reference of biased ones."""
    variances = {}
    for t in unbiased:
        v = float(np.sum(np.var(_flat(m, t.label), axis=0, ddof=1)))
        variances[t.label] = v if math.isfinite(v) else math.inf
    return min(variances, key=variances.get)


def cost_note(result: Result, pilot_s: float, compile_s: float) -> str:
    """The pilot's cost, in seconds and in gradients of the choice."""
    per_grad = result.table.summary_of(result.label).time_per_grad
    cost = f"pilot: {pilot_s:.2f} s, of which compiling {compile_s:.2f} s"
    if per_grad > 0:
        cost += f"; {pilot_s / per_grad:.3g} gradients of the choice"
    return cost


def choose(table: ComparisonTable, reference, skip=frozenset()):
    """The chosen label and a sentence: the best by variance (or MSE) × time; among those within
    its uncertainty (ratio interval reaching 1), the fastest. ``skip``: labels never chosen
    (unbiased candidates that disagree with the others)."""
    finite = [s for s in table.summary if s.finite and math.isfinite(s.ratio) and s.estimator not in skip]
    if not finite:
        raise ValueError("Every candidate returned NaN or infinite gradients on this problem, or disagreed "
                         "with the others: " + ", ".join(s.estimator for s in table.summary)
                         + ". Check f and the params.")
    best = next((s for s in finite if s.best), None)
    if best is None:  # the best was skipped: the lowest ratio left, alone (its interval was against another)
        best = min(finite, key=lambda s: s.ratio)
        close = [best]
    else:
        close = [s for s in finite if s.best or s.ratio_lo <= 1.0]
    pick = min(close, key=lambda s: s.time_per_grad)
    what = "MSE × time" if best.biased else "variance × time"
    others = sorted((s for s in finite if s.estimator != pick.estimator), key=lambda s: s.ratio)
    if skip:
        note = f" Not chosen, as biased here (their means disagree with the other candidates'): {', '.join(sorted(skip))}."
    else:
        note = ""
    if pick is best:
        if not others:
            return pick.estimator, f"{pick.estimator} is the only candidate measured."
        nxt = others[0]
        reason = (f"{pick.estimator} has the lowest {what}; the next, {nxt.estimator}, is {nxt.ratio:.3g}× "
                  f"[{nxt.ratio_lo:.3g}, {nxt.ratio_hi:.3g}] higher.")
    else:
        reason = (f"{pick.estimator} is within the uncertainty of the lowest {what} ({best.estimator}: "
                  f"ratio {pick.ratio:.3g} [{pick.ratio_lo:.3g}, {pick.ratio_hi:.3g}]) and cheaper "
                  f"({_fmt_time(pick.time_per_grad)} vs {_fmt_time(best.time_per_grad)} per gradient).")
    if pick.biased:
        reason += (f" It is biased: squared bias {pick.bias_sq:.3g} against {reference}, "
                   f"Σ variance {pick.variance:.3g}.")
    if pick.rounding:
        reason += " Its variance is at float rounding level: it is exact here."
    return pick.estimator, reason + note
