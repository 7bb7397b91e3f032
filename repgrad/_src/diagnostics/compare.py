r"""Gradient estimators side by side: mean, variance, SNR, bias and cost of each.

For each estimator ĝ of ∇θ E_{p_θ}[f], ``compare`` draws R independent estimates (one
``jax.vmap`` over R split keys, compiled once per estimator) and reports, per
parameter θ_i,

.. math::

  \bar g_i = \frac1R \sum_r \hat g_i^{(r)}, \quad
  \mathbb{V}_i = \frac{1}{R-1} \sum_r (\hat g_i^{(r)} - \bar g_i)^2, \quad
  \mathrm{SNR}_i = |\bar g_i| / \sqrt{\mathbb{V}_i},

the bias ḡ_i − ∇θ_i E[f] against an exact gradient when one is given (with its
standard error sqrt(V_i / R)), and the cost: the median wall time of one jitted
gradient call after compilation, and the number of per-sample evaluations of f and of
its derivative, counted from the estimator's jaxpr (``count.py``). The efficiency
figure is variance × cost: an estimator that is twice as noisy but four times cheaper
wins, since averaging four of its gradients halves the variance.

``compare_estimators`` builds the transforms itself from estimator values or spec strings
(``"score:loo"``), which parse through the one registry of estimator names
(``repgrad._src.registry``) into estimator values.

References:
  Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine
  Learning", JMLR 2020 (arXiv:1906.10652), §3 and §8.
  Rainforth et al., "Tighter Variational Bounds are Not Necessarily Better", ICML 2018
  (the gradient signal-to-noise ratio).
"""

from __future__ import annotations

import math
import time

import jax
import numpy as np

from .. import registry
from ..core import transforms as _transforms
from ..core.estimator import Estimator
from .count import count_calls, counted
from .measure import measure
from .summary import summarize
from .table import ComparisonTable, Row

DEFAULT_ESTIMATORS = ("pathwise", "score", "score:loo", "measure_valued")


def parse_estimator(spec) -> tuple[str, str, dict]:
    """``"name[:option,key=value,...]"`` → ``(label, name, options)`` for ``rg.expectation``.

    The spec language is the registry's, shared with ``rg.expectation`` and the
    ``repgrad`` command: ``"score:loo"`` is ``estimator="score", baseline="loo"``;
    ``"measure_valued:uncoupled"`` is ``coupled=False``; ``key=value`` pairs pass
    options to the estimator (values parsed as Python literals, else strings). A
    ``(name, options)`` tuple is also accepted.

    Example:
      >>> from repgrad.diagnostics import parse_estimator
      >>> parse_estimator("score:loo")
      ('score:loo', 'score', {'baseline': 'loo'})
    """
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict):
        name, options = spec
        label = name + "".join(f":{k}={v}" for k, v in options.items())
        name, spec_options = registry.parse_spec(name)
        return label, name, {**spec_options, **options}
    if not isinstance(spec, str):
        raise TypeError(
            f"estimator spec must be a string like 'score:loo', a (name, options) tuple or an estimator "
            f"value such as rg.score(baseline='loo'); got {spec!r}."
        )
    name, options = registry.parse_spec(spec)
    return spec, name, options


def registered_estimators() -> dict[str, tuple[str, ...]]:
    """``{name: aliases}``: each distinct estimator of the registry once, under its first name."""
    groups: dict = {}
    for name, factory in registry.ESTIMATORS.items():
        groups.setdefault(factory, []).append(name)
    return {names[0]: tuple(names[1:]) for names in groups.values()}


def grad_fn(f, dist, estimator, num_samples, *, has_aux: bool = False):
    """``g(params, key, *args)``: one gradient estimate by ``estimator`` (f's aux output dropped),
    from the initial baseline state and (REBAR) the default control parameters, so that every
    replicate is an independent draw. RELAX, whose control ψ is the user's, raises a TypeError."""
    fn = _transforms.grad(f, dist, estimator, num_samples=num_samples, has_aux=has_aux)
    kwargs = {}
    if estimator.control_init is not None:
        kwargs["control_params"] = estimator.control_init()  # RELAX raises: its ψ is the user's
    stateful = estimator.stateful

    def g(params, key, *args):
        out = fn(params, key, *args, **kwargs, **({"baseline_state": estimator.init()} if stateful else {}))
        if stateful:
            out = out[0]
        if estimator.control_init is not None:
            out = out[0]
        return out[0] if has_aux else out

    return g


_grad_fn = grad_fn


def _leaf_rows(path, est, exact_leaf, max_elements):
    """(param label, estimates (R, m), exact (m,) or None, aggregate?) per leaf."""
    name = jax.tree_util.keystr(path).replace("['", "").replace("']", ".").rstrip(".")
    name = name.replace("][", ",") or "params"
    est = np.asarray(est, np.float64)
    r = est.shape[0]
    flat = est.reshape(r, -1)
    ex = None if exact_leaf is None else np.broadcast_to(np.asarray(exact_leaf, np.float64), est.shape[1:]).reshape(-1)
    if flat.shape[1] == 1:
        return [(name, flat[:, 0], None if ex is None else ex[0], False)]
    if flat.shape[1] <= max_elements:
        idx = list(np.ndindex(est.shape[1:]))
        return [(f"{name}[{','.join(map(str, i))}]", flat[:, j], None if ex is None else ex[j], False) for j, i in enumerate(idx)]
    return [(f"{name} (norm)", flat, ex, True)]


def _stats(est, exact, aggregate):
    r = est.shape[0]
    if aggregate:
        mean_vec = est.mean(axis=0)
        variance = float(est.var(axis=0, ddof=1).sum())
        mean = float(np.linalg.norm(mean_vec))
        ex = float("nan") if exact is None else float(np.linalg.norm(exact))
        bias = float("nan") if exact is None else float(np.linalg.norm(mean_vec - exact))
    else:
        mean = float(est.mean())
        variance = float(est.var(ddof=1))
        ex = float("nan") if exact is None else float(exact)
        bias = mean - ex if exact is not None else float("nan")
    std = math.sqrt(variance)
    snr = abs(mean) / std if std > 0 else float("inf")
    return mean, ex, bias, math.sqrt(variance / r), variance, snr


def _norm_note(sizes, max_elements):
    names = ", ".join(f"{name}: {m}" for name, m in sizes)
    return (
        f"(norm) rows: an array parameter with more than {max_elements} elements ({names}) gets one row: "
        "mean, exact and bias are Euclidean norms of the vectors, variance is the sum of the elements' "
        "variances (the trace of their covariance) and SNR = mean/sqrt(variance). An unbiased estimator "
        "shows bias/SE near 1 on such a row (E|mean - exact|^2 = variance/R); max_elements= sets the cut."
    )


def _eps(leaves) -> float:
    """The coarsest machine epsilon among the gradient's float leaves (float32's if none)."""
    eps = [float(np.finfo(np.asarray(x).dtype).eps) for x in leaves if np.issubdtype(np.asarray(x).dtype, np.inexact)]
    return max(eps, default=float(np.finfo(np.float32).eps))


def _flat(leaves, r):
    return np.concatenate([np.asarray(x, np.float64).reshape(r, -1) for x in leaves], axis=1)


def compare(
    transforms,
    params,
    key,
    *args,
    num_replicates: int = 500,
    exact=None,
    timing_repeats: int = 30,
    max_elements: int = 4,
    count=None,
    title: str = "",
    progress=None,
    vectorize: bool = True,
    num_samples=None,
    clock=time.perf_counter,
    num_bootstrap: int = 1000,
) -> ComparisonTable:
    """Runs several gradient transforms on the same problem and tabulates them.

    Every transform is compiled and warmed up first. The statistics come from R independent
    estimates, the same R keys for every transform. Times come from calls interleaved round
    robin across the transforms (``timing.py``), so that load on a shared machine hits all
    alike; ``time_per_grad`` is the median over rounds. Besides one row per estimator and
    parameter, the table has one ``Summary`` per estimator over all parameters: the summed
    variance with its standard error, variance × time and its ratio to the best estimator's
    with a 95% bootstrap interval (``summary.py``). A NaN or infinite estimate is never best.

    Args:
      transforms: ``{label: grad_fn}`` with ``grad_fn(params, key, *args) -> grads``
        (e.g. ``rg.pathwise_grad(f, dist, num_samples=16)``), all for the same f and
        dist. Build them on ``counted(f)`` (or pass ``count=``) to get f-evaluation
        counts; otherwise those columns are empty.
      params: the parameters (a pytree).
      key: a PRNG key; replicate r uses the r-th of ``jax.random.split(key, R)``.
      *args: extra arguments passed to every transform.
      num_replicates: R, the number of independent gradient estimates (≥ 2).
      exact: the exact gradient (pytree like ``params``) or ``None``.
      timing_repeats: with ``vectorize=True``, the interleaved timing rounds (each call
        shorter than 1 ms is timed in a group of calls, as the benchmarks do).
      max_elements: array parameters with at most this many elements get one row per
        element; a larger one gets one ``"name (norm)"`` row: its mean, exact and bias are
        Euclidean norms of the vectors, its variance is the sum of the elements' variances
        (the trace of their covariance, the quantity that adds up over parameters and that
        SGD's progress depends on), so a large layer is one line, not thousands. A note
        under the table says so. On such a row an unbiased estimator shows bias/SE ≈ 1,
        since E‖ḡ − ∇‖² = variance / R.
      count: optional ``{label: grad_fn}`` built on ``counted(f)``, traced (never
        run) to count evaluations of f when ``transforms`` use the plain f.
      title: a heading for the table.
      progress: ``True`` for ``progress_bar()`` on stderr (a bar on a terminal, a line
        every 10% in a log), or a callback ``progress(done, total, label)``.
      vectorize: ``True``: the R replicates are one ``jax.jit(jax.vmap(grad_fn))``
        call over R keys, and ``timing_repeats`` rounds of ``jax.jit(grad_fn)`` calls are
        timed (two compilations per estimator). ``False``: ``jax.jit(grad_fn)`` is
        compiled once and called R times, one key each, in R interleaved rounds; those R
        calls are also the timing sample (one compilation; faster when compiling
        dominates, as for small f). The statistics use the same keys either way.
      num_samples: optional ``{label: N}`` for the table's N column.
      clock: the time source (seconds).
      num_bootstrap: resamples for the ratio intervals.

    Returns:
      A ``ComparisonTable`` (``print`` it, ``.records()``, ``.summary``, ``.best``,
      ``.to_dict()``, ``.plot()``).

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> from repgrad import diagnostics
      >>> f = diagnostics.counted(lambda x: jnp.cos(2.0 * x))
      >>> dist = lambda p: rg.Normal(p["loc"], p["scale"])
      >>> params = {"loc": jnp.float32(1.0), "scale": jnp.float32(1.0)}
      >>> table = diagnostics.compare(
      ...     {"pathwise": rg.pathwise_grad(f, dist, num_samples=16),
      ...      "score+loo": rg.score_grad(f, dist, num_samples=16, baseline="loo")},
      ...     params, jax.random.key(0), num_replicates=200, timing_repeats=3)
      >>> table.row("pathwise", "loc").f_evals
      16
      >>> table.best in ("pathwise", "score+loo")
      True

    References:
      Mohamed et al. 2020 (arXiv:1906.10652), §3 and §8.
    """
    if not isinstance(transforms, dict) or not transforms:
        raise TypeError(
            "transforms must be a non-empty dict {label: grad_fn}, e.g. "
            "{'pathwise': rg.pathwise_grad(f, dist, num_samples=16)}; to compare estimators by "
            "name use repgrad.diagnostics.compare_estimators(f, dist, params, key, estimators=[...])."
        )
    if isinstance(num_replicates, bool) or not isinstance(num_replicates, int) or num_replicates < 2:
        raise ValueError(f"num_replicates must be an int >= 2 (variances need two estimates); got {num_replicates!r}.")
    if isinstance(timing_repeats, bool) or not isinstance(timing_repeats, int) or timing_repeats < 1:
        raise ValueError(f"timing_repeats must be an int >= 1; got {timing_repeats!r}.")
    if exact is not None:
        _, treedef = jax.tree_util.tree_flatten(params)
        try:
            treedef.flatten_up_to(exact)
        except (ValueError, TypeError) as e:
            raise TypeError(f"exact must have the structure of params ({treedef}); got {exact!r}.") from e
    started = clock()
    m = measure(transforms, params, key, *args, num_replicates=num_replicates, vectorize=vectorize,
                timing_repeats=timing_repeats, clock=clock, progress=progress)
    calls = {}
    for label, fn in transforms.items():
        counter = fn if count is None else count.get(label)
        c = count_calls(counter, params, key, *args) if counter is not None else None
        calls[label] = None if c is None or (c.f_evals == 0 and c.grad_evals == 0) else c  # None: f not ``counted``
    return tabulate(m, params, calls=calls, exact=exact, max_elements=max_elements, num_samples=num_samples,
                    title=title, num_bootstrap=num_bootstrap, seconds=clock() - started)


def tabulate(m, params, *, calls=None, exact=None, max_elements: int = 4, num_samples=None, title: str = "",
             biased=None, reference=None, num_bootstrap: int = 1000, notes=(), seconds=float("nan")) -> ComparisonTable:
    """A ``ComparisonTable`` from a ``Measurement``: per-parameter rows and per-estimator summaries.

    Args:
      m: the ``Measurement`` (replicates and interleaved timings of each estimator).
      params: the parameters the gradients are of (their structure names the rows).
      calls: ``{label: CallCount or None}``, evaluations of f per gradient.
      exact, max_elements: see ``compare``.
      num_samples: ``{label: N}`` for the N column.
      title, notes, seconds: the table's heading, extra lines and wall time.
      biased, reference: see ``summarize`` (labels of biased estimators are ranked by MSE
        against the estimator labelled ``reference``).
      num_bootstrap: resamples for the ratio intervals.
    """
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    exact_leaves = [None] * len(leaves_with_path)
    if exact is not None:
        try:
            exact_leaves = treedef.flatten_up_to(exact)
        except (ValueError, TypeError) as e:
            raise TypeError(f"exact must have the structure of params ({treedef}); got {exact!r}.") from e
    labels = list(m.labels)
    calls = dict(calls or {})
    num_samples = dict(num_samples or {})
    rows, flats, eps, counts, norm_sizes = [], [], [], [], {}
    for i, label in enumerate(labels):
        seconds_i = float(np.median(m.seconds[:, i]))
        est_leaves = treedef.flatten_up_to(m.grads[i])
        calls_i = calls.get(label)
        evals = None if calls_i is None else calls_i.f_evals + calls_i.grad_evals
        counts.append(None if calls_i is None else (calls_i.f_evals, calls_i.grad_evals))
        flats.append(_flat(est_leaves, m.replicates))
        eps.append(_eps(est_leaves))
        for (path, _), est, ex in zip(leaves_with_path, est_leaves, exact_leaves, strict=True):
            for pname, e, exv, agg in _leaf_rows(path, est, ex, max_elements):
                if agg:
                    norm_sizes[pname[: -len(" (norm)")]] = e.shape[1]
                mean, exv_f, bias, bias_se, variance, snr = _stats(e, exv, agg)
                rows.append(
                    Row(
                        estimator=label,
                        param=pname,
                        mean=mean,
                        exact=exv_f,
                        bias=bias,
                        bias_se=bias_se,
                        variance=variance,
                        snr=snr,
                        time_per_grad=seconds_i,
                        f_evals=None if calls_i is None else calls_i.f_evals,
                        grad_evals=None if calls_i is None else calls_i.grad_evals,
                        var_x_time=variance * seconds_i,
                        var_x_evals=float("nan") if evals is None else variance * evals,
                        replicates=m.replicates,
                        num_samples=num_samples.get(label),
                    )
                )
    exact_flat = None
    if exact is not None:
        exact_flat = np.concatenate([
            np.broadcast_to(np.asarray(ex, np.float64), np.shape(leaf)).reshape(-1)
            for (_, leaf), ex in zip(leaves_with_path, exact_leaves, strict=True)
        ])
    biased = set(biased or ())
    summary = summarize(labels, flats, m.seconds, num_samples=[num_samples.get(lb) for lb in labels], calls=counts,
                        eps=eps, exact=exact_flat, num_bootstrap=num_bootstrap,
                        biased=[lb in biased for lb in labels],
                        reference=None if reference is None else labels.index(reference))
    summary = tuple(s._replace(compile_s=c) for s, c in zip(summary, m.compile_s, strict=True))
    notes = tuple(notes) + ((_norm_note(norm_sizes.items(), max_elements),) if norm_sizes else ())
    return ComparisonTable(rows=tuple(rows), title=title, notes=notes, summary=summary, seconds=seconds)


def _equal_cost_samples(fx_counted, dist, estimators, num_samples, params, key):
    """Per estimator, the N at which its f + ∇f evaluations per gradient match the costliest
    estimator's at ``num_samples``: evaluations are counted from the jaxpr at N and 2N (an
    affine cost a + b·N), so N_i = floor((B − a_i) / b_i) with B = max_i (a_i + b_i·num_samples).
    Estimators whose cost does not grow with N (enumeration) keep ``num_samples``."""
    costs = {}
    for label, est in estimators.items():
        c1, c2 = (count_calls(_grad_fn(fx_counted, dist, est, m), params, key) for m in (num_samples, 2 * num_samples))
        e1, e2 = c1.f_evals + c1.grad_evals, c2.f_evals + c2.grad_evals
        slope = (e2 - e1) / num_samples
        costs[label] = (e1 - slope * num_samples, slope)
    budget = max(a + b * num_samples for a, b in costs.values())
    if budget <= 0:
        raise ValueError("equal_cost=True needs evaluations of f to count, and none were found in any estimator.")
    out = {}
    for label, (a, b) in costs.items():
        n = num_samples if b <= 0 else int(math.floor((budget - a) / b + 1e-9))
        out[label] = max(n, estimators[label].min_samples, 1)
    return out, budget


def _samples_per_estimator(num_samples, labels, specs):
    """``num_samples`` as ``{label: N}``: an int for all, or a mapping keyed by label or spec."""
    if isinstance(num_samples, int) and not isinstance(num_samples, bool):
        return dict.fromkeys(labels, num_samples)
    if not hasattr(num_samples, "items"):
        raise TypeError(f"num_samples must be an int or a dict {{estimator: N}}; got {num_samples!r}.")
    by = dict(num_samples.items())
    known = set(labels) | {s for s in specs if isinstance(s, str)}
    unknown = [k for k in by if k not in known and not isinstance(k, Estimator)]
    if unknown:
        raise ValueError(f"num_samples names {unknown}, which are not among the estimators {labels}.")
    out = {}
    for label, spec in zip(labels, specs, strict=True):
        n = by.get(label, by.get(spec) if isinstance(spec, (str, Estimator)) else None)
        if n is None:
            raise ValueError(
                f"num_samples has no entry for {label!r}; give every estimator its N, e.g. "
                f"num_samples={{{', '.join(repr(lb) + ': 16' for lb in labels)}}}, or one int for all."
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"num_samples[{label!r}] must be an int >= 1; got {n!r}.")
        out[label] = n
    return out


def compare_estimators(
    f,
    dist,
    params,
    key,
    *args,
    estimators=DEFAULT_ESTIMATORS,
    num_samples=16,
    equal_cost: bool = False,
    num_replicates: int = 500,
    exact=None,
    timing_repeats: int = 30,
    max_elements: int = 4,
    skip_unsupported: bool = False,
    title: str = "",
    progress=None,
    vectorize: bool = True,
    clock=time.perf_counter,
) -> ComparisonTable:
    """Compares estimators given as values or by name, each built with ``rg.grad``.

    An estimator is a value (``rg.score(baseline="loo")``, labelled by its name) or a
    spec string: every name in ``repgrad.ESTIMATORS`` works, so estimators registered
    there appear without changes here. Options follow a colon: ``"score:loo"``
    (``baseline="loo"``), ``"measure_valued:uncoupled"``, ``"name:key=value,..."``; see
    ``parse_estimator``. f-evaluation counts come from tracing the estimator on
    ``counted(f)``; statistics and timings use the plain f.

    **Cost, and comparing at equal cost.** Two costs are reported per gradient: the
    evaluations of f and of its derivative (counted from the jaxpr: exact, the same on every
    machine; a derivative pass is counted as one evaluation though it costs a small multiple
    of one), and the median seconds of a compiled call (measured, interleaved). The
    comparison is at equal *time*: each estimator's variance × time (the summary's
    ``var_x_time``) is the variance its average over one second of gradients would have,
    whatever its N, so the lowest one wins (Mohamed et al. 2020, §8). That is why
    ``equal_cost`` does not try to equalize seconds: time per call is a + b·N with a fixed
    per-call overhead, so no rescaling of N matches it, while variance × time already is
    the equal-time comparison. ``equal_cost=True`` equalizes *evaluations* instead: each
    estimator's N is chosen so that its f + ∇f evaluations per gradient match those of the
    costliest estimator at ``num_samples`` (so none runs below ``num_samples``), and the
    variance column itself compares at equal work. Or give each estimator its own N with a
    dict.

    Args:
      f: ``f(x, *args)`` returning a scalar for one sample.
      dist: ``dist(params)`` returning a distribution.
      params, key, *args: as for the transforms.
      estimators: estimator values, names or specs; ``"all"`` means every distinct
        registered estimator (aliases dropped) and implies ``skip_unsupported=True``.
      num_samples: samples per gradient: one int for every estimator, or a dict
        ``{label: N}`` keyed by the table's labels (the spec strings as given, or the
        names of estimator values).
      equal_cost: choose each estimator's N for equal f + ∇f evaluations per gradient
        (see above); ``num_samples`` is then an int, the costliest estimator's N.
      num_replicates, exact, timing_repeats, max_elements, title, progress,
        vectorize, clock: see ``compare``.
      skip_unsupported: leave out estimators that reject this f/dist (TypeError or
        ValueError when traced) and list them in ``table.notes`` instead of raising.

    Returns:
      A ``ComparisonTable``, with per-parameter rows and a per-estimator ``summary``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> from repgrad import diagnostics
      >>> p = diagnostics.gaussian_problem("quadratic", k=2.0)
      >>> table = diagnostics.compare_estimators(p.f, p.dist, p.params, jax.random.key(0),
      ...     estimators=["pathwise", "score:loo", "measure_valued"], num_samples=8, equal_cost=True,
      ...     num_replicates=100, exact=p.exact, timing_repeats=3)
      >>> [(s.estimator, s.num_samples, s.f_evals + s.grad_evals) for s in table.summary]
      [('pathwise', 20, 40), ('score:loo', 40, 40), ('measure_valued', 8, 40)]

    References:
      Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine
      Learning", JMLR 2020 (arXiv:1906.10652), §8 (work-normalized variance).
      Glynn & Whitt, "The Asymptotic Efficiency of Simulation Estimators", Operations
      Research 1992.
    """
    if isinstance(estimators, str) and estimators == "all":
        estimators, skip_unsupported = list(registered_estimators()), True
    elif isinstance(estimators, (str, Estimator)):
        estimators = [estimators]
    if equal_cost and not (isinstance(num_samples, int) and not isinstance(num_samples, bool)):
        raise ValueError(
            "equal_cost=True chooses every estimator's N from one int num_samples (the costliest "
            "estimator's N); give either equal_cost=True with an int, or a dict of N per estimator."
        )
    fx = lambda x: f(x, *args)
    fx_counted = counted(fx)
    resolved, specs, notes = {}, {}, []
    for spec in estimators:
        if isinstance(spec, Estimator):
            label, name, options = spec.name, None, None
        else:
            label, name, options = parse_estimator(spec)  # unknown names raise even when skipping
        base, k = label, 2
        while label in resolved:  # e.g. two values of one estimator with different options
            label, k = f"{base} #{k}", k + 1
        try:
            estimator = spec if name is None else registry.resolve(name, options)
        except (TypeError, ValueError) as e:
            if not skip_unsupported:
                raise
            notes.append(f"skipped {label}: {_first_line(e)}")
            continue
        resolved[label], specs[label] = estimator, spec
    if not resolved:
        raise ValueError(f"No estimator in {list(estimators)} supports this problem: " + "; ".join(notes))
    first = dict.fromkeys(resolved, num_samples) if equal_cost else _samples_per_estimator(
        num_samples, list(resolved), [specs[lb] for lb in resolved])
    supported = {}
    for label, estimator in resolved.items():
        try:
            jax.eval_shape(_grad_fn(fx, dist, estimator, first[label]), params, key)  # trace-time checks only
        except (TypeError, ValueError) as e:
            if not skip_unsupported:
                raise
            notes.append(f"skipped {label}: {_first_line(e)}")
            continue
        supported[label] = estimator
    if not supported:
        raise ValueError(f"No estimator in {list(estimators)} supports this problem: " + "; ".join(notes))
    sizes, budget = _equal_cost_samples(fx_counted, dist, supported, num_samples, params, key) if equal_cost else (first, None)
    grad_fns = {label: _grad_fn(fx, dist, est, sizes[label]) for label, est in supported.items()}
    counters = {label: _grad_fn(fx_counted, dist, est, sizes[label]) for label, est in supported.items()}
    if equal_cost:
        notes.insert(0, f"equal cost: each estimator's N gives about {budget:g} evaluations of f and ∇f per gradient "
                        f"(the costliest at N = {num_samples}).")
    table = compare(
        grad_fns,
        params,
        key,
        num_replicates=num_replicates,
        exact=exact,
        timing_repeats=timing_repeats,
        max_elements=max_elements,
        count=counters,
        title=title,
        progress=progress,
        vectorize=vectorize,
        num_samples={lb: sizes[lb] for lb in grad_fns},
        clock=clock,
    )
    return table._replace(notes=tuple(notes) + table.notes)


def _first_line(error) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."
