r"""``select_estimator``: the lowest variance × time estimator for this f, dist and params (or
the lowest variance × time assignment of an ``rg.stochastic`` graph's auto nodes), by a pilot
run.

The yardstick is work-normalized variance (Mohamed et al. 2020, §8; Glynn & Whitt 1992): for an
unbiased estimator with variance V per gradient and t seconds per compiled gradient, averaging the
gradients of T seconds has variance V·t/T, so the lowest V·t wins at equal time. V is summed over
every parameter coordinate (the trace of the covariance).

The pilot (``pilot.py``):

1. **Candidates** (``candidates.py``): every registered estimator with and without the variance
   reduction that applies, biased ones only with ``allow_biased=True``. Each is traced on the
   user's f, dist and params; what an estimator refuses at trace time (no path derivative,
   unsupported family, a support too large to enumerate, ...) is excluded with its message.
   For a graph (``graph.py``): the assignments of pathwise or score to its auto nodes.
2. **Compilation**, in the candidates' order, each compiled once and cached on (f, dist,
   candidate, num_samples), so that re-selecting later (e.g. every K training steps) does not
   compile again. What is not compiled within ~60% of ``budget_s``, and candidates whose
   ``min_replicates`` gradients alone would overrun the budget (measure-valued with many
   coordinates, typically), are excluded, saying so.
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

import time

from ..core import transforms as _transforms
from ..diagnostics.compare import grad_fn
from ..diagnostics.count import count_calls, counted
from ..diagnostics.progress import progress_bar
from . import graph, pilot
from .candidates import Candidate, default_candidates, parse_candidates
from .pilot import Selection

__all__ = ["Selection", "select_estimator"]


def _build(f, dist, candidate: Candidate, num_samples, has_aux, control):
    """The candidate's gradient ``g(params, key, *args)`` (f's aux dropped), at ``control``'s ψ
    for a learned control variate (else its default ``control_init()``)."""
    if control is None:
        return grad_fn(f, dist, candidate.estimator, num_samples, has_aux=has_aux)
    est = candidate.estimator
    fn = _transforms.grad(f, dist, est, num_samples=num_samples, has_aux=has_aux)

    def g(params, key, *args):
        out = fn(params, key, *args, control_params=control,
                 **({"baseline_state": est.init()} if est.stateful else {}))
        out = out[0][0] if est.stateful else out[0]  # drop the state, then the control gradients
        return out[0] if has_aux else out

    return g


def _trial(f, dist, candidate: Candidate, num_samples, has_aux, control) -> pilot.Trial:
    def count(params, key, args):
        fx = counted(lambda x: f(x, *args)[0] if has_aux else f(x, *args))
        c = count_calls(_build(fx, dist, candidate, num_samples, False, control), params, key)
        return None if c.f_evals == 0 and c.grad_evals == 0 else c

    key = None if control is not None else ("estimator", f, dist, candidate.label, candidate.estimator, num_samples,
                                            has_aux)
    return pilot.Trial(candidate.label, candidate.biased, key,
                       lambda: _build(f, dist, candidate, num_samples, has_aux, control), count)


def _check_options(num_samples, num_replicates, budget_s):
    if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int)
                                    or num_samples < 1):
        raise ValueError(f"num_samples must be an int >= 1; got {num_samples!r}.")
    if isinstance(num_replicates, bool) or not isinstance(num_replicates, int) or num_replicates < 3:
        raise ValueError(f"num_replicates must be an int >= 3; got {num_replicates!r}.")
    if not budget_s > 0:
        raise ValueError(f"budget_s must be > 0 seconds; got {budget_s!r}.")


def select_estimator(
    f,
    dist,
    params=None,
    key=None,
    *args,
    candidates=None,
    has_aux: bool = False,
    allow_biased: bool = False,
    budget_s: float = 10.0,
    num_samples: int | None = None,
    num_replicates: int = 200,
    min_replicates: int = 32,
    exact=None,
    control_params=None,
    progress=None,
    clock=time.perf_counter,
) -> Selection:
    """Chooses the estimator of ∇θ E_{x∼dist(θ)}[f(x, *args)] with the lowest variance × time,
    measured on this f, dist and params by a pilot run; or, for an ``rg.stochastic`` objective,
    pathwise or score for each of its ``rg.sample(..., estimator="auto")`` nodes.

    Two forms::

      choice = rg.select_estimator(f, dist, params, key, *args)     # an estimator for rg.grad & co.
      choice = rg.select_estimator(objective, params, key, *args)   # objective = rg.stochastic(fn)

    See the module docstring for the pilot (candidates, compilation, interleaved measurement,
    ranking). Every candidate is unbiased unless ``allow_biased=True``; then biased ones
    (Gumbel-softmax, straight-through, Gumbel-Rao: ``Estimator.biased``) are ranked by mean
    squared error × time against an unbiased reference, never by variance alone. Where
    candidates are within each other's uncertainty the cheaper (faster) one is chosen. Learned
    control variates (REBAR, double CV, RODEO) run at their default ψ (``control_init()``)
    unless ``control_params`` gives one.

    **A stochastic computation graph.** Each auto node can be pathwise (a reparameterizable
    family) or score (a support that does not move with the parameters); a node where only one
    applies gets it. With k nodes that have a choice, all 2^k assignments are candidates for
    k ≤ 4; beyond, a greedy search: all-pathwise, all-score and every single-node change of
    each are measured, then the best of those against the best one with every improving change
    applied. Each assignment is the gradient of the whole graph (``jax.grad(objective)``), so
    the choice accounts for how the nodes' estimators interact. An assignment that makes a
    node pathwise where the cost is discontinuous in it is refused by ``rg.stochastic`` at trace
    time (``rg.ZeroGradientError``): pathwise does not apply to that node, and
    ``choice.nodes`` says so with that reason.

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

    (for a graph, key the steps on ``choice.label`` and differentiate ``choice.objective``).

    Args:
      f: ``f(x, *args)``: a scalar per sample (``(scalar, aux)`` with ``has_aux``); or an
        objective returned by ``rg.stochastic`` (then the arguments shift left: no ``dist``).
      dist: ``dist(params)`` returning a distribution.
      params: the parameters (a pytree) at which to compare.
      key: a PRNG key for the pilot.
      *args: f's extra arguments.
      candidates: estimator values, registry specs (``"score:loo"``) or the variant labels of
        the default set (``"pathwise+delta"``); default: every registered estimator that
        applies, with and without the variance reduction that applies. For a graph: a list of
        assignments (each a sequence of ``"pathwise"``/``"score"`` per auto node).
      has_aux: whether f returns ``(value, aux)``.
      allow_biased: let biased estimators be candidates (ranked by MSE).
      budget_s: the pilot's time budget, compilation included: no compilation starts after
        60% of it, candidates whose ``min_replicates`` gradients would overrun it are excluded,
        and the measurement stops when it is spent (after at least ``min_replicates`` rounds).
      num_samples: N, the samples per gradient each candidate is compared at (use your
        training N; default 16). A graph is compared at its own ``rg.stochastic(...,
        num_samples=)``.
      num_replicates: R, independent gradients per candidate (at most).
      min_replicates: the fewest R the budget may cut the measurement to.
      exact: the exact gradient (pytree like params), for the table's bias column.
      control_params: ``{label: ψ}``, the control parameters a learned control variate is
        measured at (RELAX has no default: give its ψ here and its value in ``candidates``).
      progress: ``True`` for ``repgrad.diagnostics.progress_bar()``, or a callback.
      clock: the time source (seconds).

    Returns:
      A ``Selection``: ``.estimator``, ``.label``, ``.num_samples``, ``.table``, ``.reason``
      (``print`` it for all of them); for a graph also ``.objective`` and ``.nodes``.

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
    _check_options(num_samples, num_replicates, budget_s)
    if progress is True:
        progress = progress_bar()
    elif progress is False:
        progress = None
    if graph.is_objective(f):  # select_estimator(objective, params, key, *args): the arguments shift left
        graph_params, graph_key = dist, params if params is not None else key
        args = ((key,) if params is not None and key is not None else ()) + args
        if graph_key is None:
            raise TypeError("select_estimator(objective, params, key, *args) needs params and a key.")
        if has_aux or allow_biased or control_params is not None:
            raise TypeError("has_aux, allow_biased and control_params do not apply to an rg.stochastic objective: "
                            "its auto nodes are pathwise or score, both unbiased.")
        return graph.select(f, graph_params, graph_key, args, candidates=candidates, budget_s=budget_s,
                            num_samples=num_samples,
                            num_replicates=num_replicates, min_replicates=min_replicates, exact=exact,
                            progress=progress, clock=clock)
    if key is None:
        raise TypeError("select_estimator(f, dist, params, key, *args) needs params and a key "
                        "(for an rg.stochastic objective: select_estimator(objective, params, key, *args)).")
    num_samples = 16 if num_samples is None else num_samples
    control_params = dict(control_params or {})
    start = clock()
    pool = default_candidates(allow_biased=allow_biased) if candidates is None else parse_candidates(
        candidates, allow_biased=allow_biased)
    unknown = sorted(set(control_params) - {c.label for c in pool})
    if unknown:
        raise ValueError(f"control_params names {unknown}, which are not among the candidates "
                         f"{[c.label for c in pool]}.")
    excluded = [(c.label, c.excluded) for c in pool if c.excluded]
    trials = [_trial(f, dist, c, num_samples, has_aux, control_params.get(c.label)) for c in pool if not c.excluded]
    try:
        result = pilot.run(trials, params, key, args, budget_s=budget_s, num_replicates=num_replicates,
                           min_replicates=min_replicates, start=start, clock=clock, progress=progress, exact=exact,
                           num_samples=num_samples, note_excluded=excluded,
                           title=f"select_estimator: N = {num_samples}")
    except ValueError as e:
        if str(e).startswith("No candidate applies"):
            raise ValueError("No candidate estimator applies to this f and dist: " + str(e).split(": ", 1)[1]) from None
        raise
    pilot_s = clock() - start
    table = result.table
    table = table._replace(title=f"{table.title}, {table.summary[0].replicates} gradients per candidate",
                           notes=table.notes + (pilot.cost_note(result, pilot_s, result.compile_s),))
    chosen = next(c for c in pool if c.label == result.label)
    return Selection(chosen.estimator, result.label, num_samples, table, result.reason, tuple(result.excluded),
                     pilot_s, result.compile_s)
