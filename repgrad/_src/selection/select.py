r"""``select_estimator``: the lowest variance × time estimator for this f, dist and params, by a
pilot run.

The yardstick is work-normalized variance (Mohamed et al. 2020, §8; Glynn & Whitt 1992): for an
unbiased estimator with variance V per gradient and t seconds per compiled gradient, averaging the
gradients of T seconds has variance V·t/T, so the lowest V·t wins at equal time. V is summed over
every parameter coordinate (the trace of the covariance).

The pilot:

1. **Candidates** (``candidates.py``): every registered estimator with and without the variance
   reduction that applies, biased ones only with ``allow_biased=True``. Each is traced on the
   user's f, dist and params; what an estimator refuses at trace time (no path derivative,
   unsupported family, a support too large to enumerate, ...) is excluded with its message.
2. **Compilation**, cheapest first, each compiled once and cached on (f, dist, candidate,
   num_samples), so that re-selecting later (e.g. every K training steps) does not compile again.
   What is not compiled within ~60% of ``budget_s``, and candidates whose ``min_replicates``
   gradients alone would overrun the budget (measure-valued with many coordinates, typically),
   are excluded, saying so.
3. **Measurement** (``repgrad.diagnostics``): R gradients per candidate from the same R keys,
   the calls interleaved round robin across candidates (so that load on the machine hits all
   alike), until R rounds or ``budget_s`` (at least ``min_replicates``). Time per gradient is the
   median of a candidate's calls.
4. **Ranking**: V·t, with each candidate's ratio to the best one's and a 95% bootstrap
   interval (over replicates and rounds). A NaN or infinite estimate is never chosen. Biased
   candidates are ranked by MSE·t, their squared bias estimated against the lowest-variance
   unbiased candidate. Among the candidates whose interval reaches the best one's value (within
   the uncertainty), the one with the lowest time per gradient is chosen.

References:
  Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine Learning",
  JMLR 2020 (arXiv:1906.10652), §8.
  Glynn & Whitt, "The Asymptotic Efficiency of Simulation Estimators", Operations Research 1992.
"""

from __future__ import annotations

import collections
import math
import time
from typing import NamedTuple

import jax
import numpy as np

from ..core.estimator import Estimator
from ..core.kernels import ZeroGradientError
from ..diagnostics.compare import grad_fn, tabulate
from ..diagnostics.count import count_calls, counted
from ..diagnostics.measure import measure
from ..diagnostics.progress import progress_bar
from ..diagnostics.table import ComparisonTable, _fmt_time
from .candidates import Candidate, default_candidates, parse_candidates

COMPILE_SHARE = 0.6  # of budget_s: no new compilation starts after it
CACHE_SIZE = 256  # compiled candidates kept (least recently used dropped first)
_CACHE: collections.OrderedDict = collections.OrderedDict()  # (f, dist, label, estimator, N, has_aux) -> entry


class Selection(NamedTuple):
    """What ``select_estimator`` chose, and why.

    Attributes:
      estimator: the chosen ``Estimator``, usable as is in ``rg.grad``, ``rg.value_and_grad`` and
        ``rg.expectation`` and under ``jax.jit``; the same value (the same object) each time
        the same candidate is chosen, so it can key a cache of jitted steps.
      label: its label in the table (``"score:loo"``, ``"pathwise+delta"``).
      num_samples: the samples per gradient it was compared at.
      table: the ``ComparisonTable`` of every candidate measured (per-parameter rows; per
        estimator: Σ variance ± SE, compiled time per gradient, f / ∇f evaluations, variance ×
        time and its ratio to the best with a 95% interval), with the excluded candidates and
        their reasons, and the pilot's cost, in its notes.
      reason: one sentence a person can read.
      excluded: ``((label, reason), ...)`` of the candidates not measured.
      pilot_s: wall seconds of the pilot, compilation included.
      compile_s: of which compiling (0 when every candidate was cached).
    """

    estimator: Estimator
    label: str
    num_samples: int
    table: ComparisonTable
    reason: str
    excluded: tuple
    pilot_s: float
    compile_s: float

    def __str__(self) -> str:
        return f"{self.table}\n\nchoice: {self.label} (num_samples={self.num_samples}). {self.reason}"


def _entry(f, dist, candidate: Candidate, num_samples, has_aux):
    """{grad_fn, jitted, counts, compiled} of a candidate, cached on (f, dist, candidate, N, has_aux)
    (a bounded LRU cache), so that a re-selection with the same f and dist compiles nothing."""
    key = (f, dist, candidate.label, candidate.estimator, num_samples, has_aux)
    try:
        hash(key)
    except TypeError:  # an unhashable f or dist: no cache
        key = None
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    g = grad_fn(f, dist, candidate.estimator, num_samples, has_aux=has_aux)
    entry = {"grad_fn": g, "jitted": jax.jit(g), "counts": {}, "compiled": set()}
    if key is not None:
        _CACHE[key] = entry
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return entry


def _signature(params, args):
    return jax.tree_util.tree_structure((params, args)), tuple(
        (np.shape(x), str(jax.numpy.result_type(x))) for x in jax.tree_util.tree_leaves((params, args)))


def _counts(entry, f, dist, candidate, num_samples, has_aux, params, key, args, sig):
    if sig not in entry["counts"]:
        fx = counted(lambda x: f(x, *args)[0] if has_aux else f(x, *args))
        c = count_calls(grad_fn(fx, dist, candidate.estimator, num_samples), params, key)
        entry["counts"][sig] = None if c.f_evals == 0 and c.grad_evals == 0 else c
    return entry["counts"][sig]


def _why(error) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text if len(text) <= 200 else text[:197] + "..."
    if isinstance(error, ZeroGradientError):
        return "no path derivative: " + text
    return text


def select_estimator(
    f,
    dist,
    params,
    key,
    *args,
    candidates=None,
    has_aux: bool = False,
    allow_biased: bool = False,
    budget_s: float = 10.0,
    num_samples: int = 16,
    num_replicates: int = 200,
    min_replicates: int = 32,
    exact=None,
    progress=None,
    clock=time.perf_counter,
) -> Selection:
    """Chooses the estimator of ∇θ E_{x∼dist(θ)}[f(x, *args)] with the lowest variance × time,
    measured on this f, dist and params by a pilot run.

    See the module docstring for the pilot (candidates, compilation, interleaved measurement,
    ranking). Every candidate is unbiased unless ``allow_biased=True``; then biased ones
    (Gumbel-softmax, straight-through) are ranked by mean squared error × time against an
    unbiased reference, never by variance alone. Where candidates are within each other's
    uncertainty the cheaper (faster) one is chosen.

    **In training** the best estimator changes as the parameters move (the score function early,
    pathwise late, or the other way round). Re-select every K steps, outside ``jax.jit``, and
    keep one jitted step per choice: the pilot's compiled candidates are cached on (f, dist),
    so a re-selection costs only its measurement, and ``Selection.estimator`` is the same
    object whenever the same candidate wins::

      steps = {}
      for t in range(num_steps):
          if t % K == 0:
              choice = rg.select_estimator(f, dist, params, jax.random.fold_in(key, t), budget_s=1.0)
          if choice.label not in steps:
              steps[choice.label] = jax.jit(make_step(choice.estimator, choice.num_samples))
          params, opt_state = steps[choice.label](params, opt_state, jax.random.fold_in(key, t))

    Args:
      f: ``f(x, *args)``: a scalar per sample (``(scalar, aux)`` with ``has_aux``).
      dist: ``dist(params)`` returning a distribution.
      params: the parameters (a pytree) at which to compare.
      key: a PRNG key for the pilot.
      *args: f's extra arguments.
      candidates: estimator values, registry specs (``"score:loo"``) or the variant labels of
        the default set (``"pathwise+delta"``); default: every registered estimator that
        applies, with and without the variance reduction that applies.
      has_aux: whether f returns ``(value, aux)``.
      allow_biased: let biased estimators be candidates (ranked by MSE).
      budget_s: the pilot's time budget, compilation included: no compilation starts after
        60% of it, candidates whose ``min_replicates`` gradients would overrun it are excluded,
        and the measurement stops when it is spent (after at least ``min_replicates`` rounds).
      num_samples: N, the samples per gradient each candidate is compared at (use your
        training N).
      num_replicates: R, independent gradients per candidate (at most).
      min_replicates: the fewest R the budget may cut the measurement to.
      exact: the exact gradient (pytree like params), for the table's bias column.
      progress: ``True`` for ``repgrad.diagnostics.progress_bar()``, or a callback.
      clock: the time source (seconds).

    Returns:
      A ``Selection``: ``.estimator``, ``.label``, ``.num_samples``, ``.table``, ``.reason``
      (``print`` it for all of them).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> f = lambda x: jnp.sum(jnp.cos(6.0 * x))        # oscillates fast: not pathwise
      >>> dist = lambda p: rg.Normal(p["loc"], p["scale"])
      >>> params = {"loc": jnp.float32(0.3), "scale": jnp.float32(1.0)}
      >>> choice = rg.select_estimator(f, dist, params, jax.random.key(0), budget_s=20.0,
      ...                              candidates=["pathwise", "score:loo", "measure_valued"])
      >>> choice.label != "pathwise"
      True
      >>> grads = rg.grad(f, dist, choice.estimator, num_samples=choice.num_samples)(params, jax.random.key(1))

    References:
      Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine Learning",
      JMLR 2020 (arXiv:1906.10652), §8.
      Glynn & Whitt, "The Asymptotic Efficiency of Simulation Estimators", Operations Research 1992.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1; got {num_samples!r}.")
    if isinstance(num_replicates, bool) or not isinstance(num_replicates, int) or num_replicates < 3:
        raise ValueError(f"num_replicates must be an int >= 3; got {num_replicates!r}.")
    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0 seconds; got {budget_s!r}.")
    if progress is True:
        progress = progress_bar()
    elif progress is False:
        progress = None
    start = clock()
    pool = default_candidates(allow_biased=allow_biased) if candidates is None else parse_candidates(
        candidates, allow_biased=allow_biased)
    excluded = [(c.label, c.excluded) for c in pool if c.excluded]
    pool = [c for c in pool if not c.excluded]
    sig = _signature(params, args)

    # Trace, compile and warm up each candidate, cheapest-looking first, within the budget.
    ready, compile_s, warm, first_call_s = [], 0.0, {}, {}
    for i, c in enumerate(pool):
        if progress is not None:
            progress(i, len(pool), f"compiling {c.label}")
        entry = _entry(f, dist, c, num_samples, has_aux)
        if sig not in entry["compiled"] and clock() - start > COMPILE_SHARE * budget_s:
            try:  # no time to compile it; trace it (cheaper) to say whether it would apply
                jax.eval_shape(entry["grad_fn"], params, key, *args)
            except (TypeError, ValueError, NotImplementedError) as e:
                excluded.append((c.label, _why(e)))
                continue
            excluded.append((c.label, f"not compiled within {COMPILE_SHARE:.0%} of budget_s={budget_s:g} s "
                                      "(raise budget_s, or pass candidates=)"))
            continue
        t0 = clock()
        try:
            jax.block_until_ready(entry["jitted"](params, key, *args))
        except (TypeError, ValueError, NotImplementedError) as e:
            excluded.append((c.label, _why(e)))
            continue
        first_call_s[c.label] = 0.0
        if sig not in entry["compiled"]:
            entry["compiled"].add(sig)
            first_call_s[c.label] = clock() - t0
            compile_s += first_call_s[c.label]
        t0 = clock()
        jax.block_until_ready(entry["jitted"](params, key, *args))
        warm[c.label] = clock() - t0
        ready.append((c, entry))
    if progress is not None:
        progress(len(pool), len(pool), "compiled")
    # Too costly for the budget: drop the slowest until min_replicates rounds of the rest fit.
    left = budget_s - (clock() - start)
    while len(ready) > 1 and min_replicates * sum(warm[c.label] for c, _ in ready) > max(left, 0.0):
        slowest = max(ready, key=lambda ce: warm[ce[0].label])
        ready.remove(slowest)
        c = slowest[0]
        excluded.append((c.label, f"too costly for budget_s={budget_s:g} s: {_fmt_time(warm[c.label])} per gradient, "
                                  f"{min_replicates} gradients would not fit (e.g. measure-valued with many coordinates)"))
    if not ready:
        raise ValueError(
            "No candidate estimator applies to this f and dist: "
            + "; ".join(f"{label}: {why}" for label, why in excluded)
        )
    unbiased = [c for c, _ in ready if not c.biased]
    if not unbiased:
        raise ValueError(
            "Only biased candidates apply here, and biased estimators are ranked by MSE against an unbiased "
            "reference; add an unbiased candidate (e.g. 'score:loo')."
        )

    fns = {c.label: e["grad_fn"] for c, e in ready}
    m = measure(fns, params, key, *args, num_replicates=num_replicates, vectorize=False, clock=clock,
                progress=progress, budget_s=max(budget_s - (clock() - start), 0.0),
                min_replicates=min(min_replicates, num_replicates), jitted={c.label: e["jitted"] for c, e in ready})
    # The reference for biased candidates: the unbiased one with the lowest finite variance.
    reference = None
    if any(c.biased for c, _ in ready):
        variances = {}
        for c in unbiased:
            leaves = jax.tree_util.tree_leaves(m.grads[m.labels.index(c.label)])
            flat = np.concatenate([np.asarray(x, np.float64).reshape(m.replicates, -1) for x in leaves], axis=1)
            v = float(np.sum(np.var(flat, axis=0, ddof=1)))
            variances[c.label] = v if math.isfinite(v) else math.inf
        reference = min(variances, key=variances.get)
    calls = {c.label: _counts(e, f, dist, c, num_samples, has_aux, params, key, args, sig) for c, e in ready}
    pilot_s = clock() - start
    notes = [f"excluded {label}: {why}" for label, why in excluded]
    table = tabulate(m, params, calls=calls, exact=exact, num_samples=dict.fromkeys(fns, num_samples),
                     title=f"select_estimator: N = {num_samples}, {m.replicates} gradients per candidate",
                     biased=[c.label for c, _ in ready if c.biased], reference=reference, notes=notes, seconds=pilot_s)
    # Compilation time per candidate: of this pilot (0 where the cache had it compiled already).
    table = table._replace(summary=tuple(x._replace(compile_s=first_call_s[x.estimator]) for x in table.summary))
    choice, reason = _choose(table, reference)
    if m.stopped == "budget":
        reason += f" (budget_s cut the pilot to {m.replicates} of {num_replicates} gradients per candidate)"
    chosen = next(c for c, _ in ready if c.label == choice)
    per_grad = table.summary_of(choice).time_per_grad
    cost = f"pilot: {pilot_s:.2f} s, of which compiling {compile_s:.2f} s"
    if per_grad > 0:
        cost += f"; {pilot_s / per_grad:.3g} gradients of the choice"
    table = table._replace(notes=table.notes + (cost,))
    return Selection(chosen.estimator, choice, num_samples, table, reason, tuple(excluded), pilot_s, compile_s)


def _choose(table: ComparisonTable, reference):
    """The chosen label and a sentence: the best by variance (or MSE) × time; among those within
    its uncertainty (ratio interval reaching 1), the fastest."""
    finite = [s for s in table.summary if s.finite and math.isfinite(s.ratio)]
    if not finite:
        raise ValueError("Every candidate returned NaN or infinite gradients on this problem: "
                         + ", ".join(s.estimator for s in table.summary) + ". Check f and the params.")
    best = next(s for s in finite if s.best)
    close = [s for s in finite if s.best or s.ratio_lo <= 1.0]
    pick = min(close, key=lambda s: s.time_per_grad)
    what = "MSE × time" if best.biased else "variance × time"
    others = sorted((s for s in finite if s.estimator != pick.estimator), key=lambda s: s.ratio)
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
    return pick.estimator, reason
