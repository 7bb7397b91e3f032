"""Replicates and interleaved timings of several gradient functions: the raw measurement behind
``compare`` (and behind the estimator selection built on it).

Every function is compiled and called once (warm-up) before anything is timed. The statistics
come from R independent estimates, the r-th from the r-th of ``jax.random.split(key, R)`` for
every function (common random numbers: the estimates of two estimators are correlated, which
makes the ratio of their variances more precise). Times come from calls interleaved round robin
(``timing.py``).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from .progress import progress_bar
from .timing import time_round_robin


class Measurement(NamedTuple):
    """What ``measure`` returns.

    Attributes:
      labels: the functions' labels, in order.
      grads: per label, the R gradient estimates (the params' pytree, leaves with a leading axis R).
      seconds: an array (rounds, labels) of seconds per compiled call, from interleaved rounds.
      compile_s: per label, seconds of the first call (compilation included).
      replicates: R.
      stopped: ``"done"``, or ``"budget"`` when ``budget_s`` cut the replicates short.
    """

    labels: tuple
    grads: tuple
    seconds: Any
    compile_s: tuple
    replicates: int
    stopped: str = "done"


def measure(fns, params, key, *args, num_replicates: int = 500, vectorize: bool = True, timing_repeats: int = 30,
            clock=time.perf_counter, progress=None, budget_s: float | None = None, min_replicates: int = 32,
            jitted=None) -> Measurement:
    """R gradient estimates and interleaved timings of each of ``fns``.

    Args:
      fns: ``{label: fn}`` with ``fn(params, key, *args) -> grads``.
      params, key, *args: the call's arguments; replicate r uses the r-th of
        ``jax.random.split(key, R)``.
      num_replicates: R.
      vectorize: ``True``: the R replicates are one ``jax.jit(jax.vmap(fn))`` call, and
        ``timing_repeats`` interleaved rounds of single calls are timed. ``False``: one compiled
        function called R times in R interleaved rounds, which are also the timing sample.
      timing_repeats: rounds timed when vectorized.
      clock: the time source (seconds).
      progress: ``True`` for ``progress_bar()``, or ``progress(done, total, label)``.
      budget_s: unvectorized only: stop the rounds once this many seconds (from the start,
        compilation included) are spent, after at least ``min_replicates`` rounds.
      min_replicates: see ``budget_s``.
      jitted: optional ``{label: jax.jit(fn)}`` to reuse (e.g. compiled for an earlier call).

    Returns:
      A ``Measurement``.
    """
    if progress is True:
        progress = progress_bar()
    elif progress is False:
        progress = None
    start = clock()
    keys = jax.random.split(key, num_replicates)
    labels = list(fns)
    n = len(labels)
    rounds = timing_repeats if vectorize else num_replicates
    # Progress in units of one timing round: compiling one function counts as many rounds as all
    # the timing together, since compilation is most of the wall time of a comparison.
    total = (n + 1) * rounds
    jitted = dict(jitted or {})

    # 1. Compile and warm up every function (and, vectorized, draw the R replicates).
    singles, grads, compile_s = [], [], []
    for i, label in enumerate(labels):
        if progress is not None:
            progress(i * rounds, total, f"compiling {label}")
        fn = fns[label]
        single = jitted.get(label) or jax.jit(fn)
        t0 = clock()
        jax.block_until_ready(single(params, keys[0], *args))
        compile_s.append(clock() - t0)
        if vectorize:
            batched = jax.jit(jax.vmap(lambda k, fn=fn: fn(params, k, *args)))
            grads.append(jax.tree_util.tree_map(np.asarray, batched(keys)))
        singles.append(single)

    # 2. Interleaved timing rounds (unvectorized: the R replicate calls themselves).
    stopped = "done"
    if vectorize:
        # Keys split into a list beforehand: indexing a key array is itself a dispatched op.
        timing_keys = list(jax.random.split(jax.random.fold_in(key, 1), rounds))
        calls = [lambda r, g=g: jax.block_until_ready(g(params, timing_keys[r], *args)) for g in singles]
        seconds, _ = time_round_robin(calls, rounds, warmup=1, clock=clock, progress=progress,
                                      progress_offset=n * rounds, progress_total=total)
        replicates = num_replicates
    else:
        outs = [[None] * num_replicates for _ in labels]
        key_list = list(keys)

        def call(r, i):
            outs[i][r] = jax.block_until_ready(singles[i](params, key_list[r], *args))

        remaining = None if budget_s is None else max(budget_s - (clock() - start), 0.0)
        seconds, _ = time_round_robin([lambda r, i=i: call(r, i) for i in range(n)], rounds, inner=1, warmup=1,
                                      clock=clock, progress=progress, progress_offset=n * rounds,
                                      progress_total=total, budget_s=remaining, min_rounds=min(min_replicates, rounds))
        replicates = seconds.shape[0]
        if replicates < num_replicates:
            stopped = "budget"
        grads = [jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *o[:replicates]) for o in outs]
    if progress is not None:
        progress(total, total, "done")
    return Measurement(tuple(labels), tuple(grads), seconds, tuple(compile_s), replicates, stopped)
