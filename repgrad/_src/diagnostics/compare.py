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
from ..core.estimator import Estimator
from ..core.transforms import expectation as _expectation
from .count import count_calls, counted
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


def _grad_fn(f, dist, estimator, num_samples):
    loss = _expectation(f, dist, estimator, num_samples=num_samples)
    if not estimator.stateful:
        return jax.grad(loss)
    init = loss.init_state
    # A stateful baseline: every replicate starts from the initial state.
    return lambda params, key: jax.grad(loss, has_aux=True)(params, key, baseline_state=init())[0]


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


def _timed_calls(fn, params, keys, args, warmup_key):
    """Calls jitted ``fn`` once per key after one warm-up (compile) call: (outputs, seconds)."""
    jax.block_until_ready(fn(params, warmup_key, *args))
    outs, times = [], []
    for k in keys:
        start = time.perf_counter()
        out = jax.block_until_ready(fn(params, k, *args))
        times.append(time.perf_counter() - start)
        outs.append(out)
    return outs, times


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
) -> ComparisonTable:
    """Runs several gradient transforms on the same problem and tabulates them.

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
      timing_repeats: calls timed after compilation; the median is reported.
      max_elements: array parameters with at most this many elements get one row per
        element; larger ones one aggregated ``"name (norm)"`` row.
      count: optional ``{label: grad_fn}`` built on ``counted(f)``, traced (never
        run) to count evaluations of f when ``transforms`` use the plain f.
      title: a heading for the table.
      progress: optional callback ``progress(done, total, label)``.
      vectorize: ``True``: the R replicates are one ``jax.jit(jax.vmap(grad_fn))``
        call over R keys, and ``timing_repeats`` separate calls of ``jax.jit(grad_fn)``
        are timed (two compilations per estimator). ``False``: ``jax.jit(grad_fn)`` is
        compiled once and called R times, one key each; those R calls are the timing
        sample (one compilation; faster when compiling dominates, as for small f).
        The statistics use the same keys either way.

    Returns:
      A ``ComparisonTable`` (``print`` it, ``.records()``, ``.to_dict()``, ``.plot()``).

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

    References:
      Mohamed et al. 2020 (arXiv:1906.10652), §3.
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
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    exact_leaves = [None] * len(leaves_with_path)
    if exact is not None:
        try:
            exact_leaves = treedef.flatten_up_to(exact)
        except (ValueError, TypeError) as e:
            raise TypeError(f"exact must have the structure of params ({treedef}); got {exact!r}.") from e
    keys = jax.random.split(key, num_replicates)
    rows = []
    total = len(transforms)
    for i, (label, fn) in enumerate(transforms.items()):
        if progress is not None:
            progress(i, total, label)
        single = jax.jit(fn)
        if vectorize:
            grads = jax.jit(jax.vmap(lambda k, fn=fn: fn(params, k, *args)))(keys)
            timing_keys = jax.random.split(jax.random.fold_in(key, 1), timing_repeats)
            _, times = _timed_calls(single, params, timing_keys, args, keys[0])
        else:
            outs, times = _timed_calls(single, params, keys, args, keys[0])
            grads = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *outs)
        seconds = float(np.median(times))
        est_leaves = treedef.flatten_up_to(grads)
        counter = fn if count is None else count.get(label)
        calls = count_calls(counter, params, key, *args) if counter is not None else None
        if calls is not None and calls.f_evals == 0 and calls.grad_evals == 0:
            calls = None  # f was not marked with ``counted``
        evals = None if calls is None else calls.f_evals + calls.grad_evals
        for (path, _), est, ex in zip(leaves_with_path, est_leaves, exact_leaves, strict=True):
            for pname, e, exv, agg in _leaf_rows(path, est, ex, max_elements):
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
                        time_per_grad=seconds,
                        f_evals=None if calls is None else calls.f_evals,
                        grad_evals=None if calls is None else calls.grad_evals,
                        var_x_time=variance * seconds,
                        var_x_evals=float("nan") if evals is None else variance * evals,
                        replicates=num_replicates,
                    )
                )
    if progress is not None:
        progress(total, total, "done")
    return ComparisonTable(rows=tuple(rows), title=title)


def compare_estimators(
    f,
    dist,
    params,
    key,
    *args,
    estimators=DEFAULT_ESTIMATORS,
    num_samples: int = 16,
    num_replicates: int = 500,
    exact=None,
    timing_repeats: int = 30,
    max_elements: int = 4,
    skip_unsupported: bool = False,
    title: str = "",
    progress=None,
    vectorize: bool = True,
) -> ComparisonTable:
    """Compares estimators given as values or by name, each built with ``rg.expectation``.

    An estimator is a value (``rg.score(baseline="loo")``, labelled by its name) or a
    spec string: every name in ``repgrad.ESTIMATORS`` works, so estimators registered
    there appear without changes here. Options follow a colon: ``"score:loo"``
    (``baseline="loo"``), ``"measure_valued:uncoupled"``, ``"name:key=value,..."``; see
    ``parse_estimator``. f-evaluation counts come from tracing the estimator on
    ``counted(f)``; statistics and timings use the plain f.

    Args:
      f: ``f(x, *args)`` returning a scalar for one sample.
      dist: ``dist(params)`` returning a distribution.
      params, key, *args: as for the transforms.
      estimators: estimator values, names or specs; ``"all"`` means every distinct
        registered estimator (aliases dropped) and implies ``skip_unsupported=True``.
      num_samples: samples per gradient estimate (the same for every estimator).
      num_replicates, exact, timing_repeats, max_elements, title, progress,
        vectorize: see ``compare``.
      skip_unsupported: leave out estimators that reject this f/dist (TypeError or
        ValueError when traced) and list them in ``table.notes`` instead of raising.

    Returns:
      A ``ComparisonTable``.

    Example:
      >>> import jax, jax.numpy as jnp, repgrad as rg
      >>> from repgrad import diagnostics
      >>> p = diagnostics.gaussian_problem("quadratic", k=2.0)
      >>> table = diagnostics.compare_estimators(p.f, p.dist, p.params, jax.random.key(0),
      ...     estimators=["pathwise", "score:loo"], num_replicates=100, exact=p.exact, timing_repeats=3)
      >>> print(table.to_text(["estimator", "param", "mean", "exact"]))  # doctest: +SKIP
    """
    if isinstance(estimators, str) and estimators == "all":
        estimators, skip_unsupported = list(registered_estimators()), True
    elif isinstance(estimators, (str, Estimator)):
        estimators = [estimators]
    fx = lambda x: f(x, *args)
    fx_counted = counted(fx)
    grad_fns, counters, notes = {}, {}, []
    for spec in estimators:
        if isinstance(spec, Estimator):
            label, name, options = spec.name, None, None
        else:
            label, name, options = parse_estimator(spec)  # unknown names raise even when skipping
        try:
            estimator = spec if name is None else registry.resolve(name, options)
            grad_fn = _grad_fn(fx, dist, estimator, num_samples)
            jax.eval_shape(grad_fn, params, key)  # trace-time checks, nothing runs
        except (TypeError, ValueError) as e:
            if not skip_unsupported:
                raise
            notes.append(f"skipped {label}: {str(e).splitlines()[0][:120]}")
            continue
        base, n = label, 2
        while label in grad_fns:  # e.g. two values of one estimator with different options
            label, n = f"{base} #{n}", n + 1
        grad_fns[label] = grad_fn
        counters[label] = _grad_fn(fx_counted, dist, estimator, num_samples)
    if not grad_fns:
        raise ValueError(f"No estimator in {list(estimators)} supports this problem: " + "; ".join(notes))
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
    )
    return table._replace(notes=tuple(notes))

