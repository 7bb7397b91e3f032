"""Timing several compiled gradient functions the way ``benchmarks/`` does.

Each candidate is compiled and called ``warmup`` times before anything is timed. Then the
candidates are called round robin: round r calls every candidate once, starting from a different
one each round and in reversed order every other round, so that load from other processes on a
shared machine, and whatever a call leaves behind (caches, allocator state), hits every candidate
alike. Calls faster than ``min_sample_s`` are timed ``inner`` at a time and averaged, since one
call of a few microseconds is below what a wall clock resolves well.

Ratios between candidates are then taken round by round (``paired_ratio``: the median over rounds
of t_i/t_j), which cancels load that drifts more slowly than a round, with a bootstrap interval
over the rounds (as ``benchmarks/overhead.py``).
"""

from __future__ import annotations

import math
import time

import numpy as np


def round_robin_order(num: int, r: int) -> list[int]:
    """The order of the candidates in round ``r``: rotated by r, reversed in odd rounds."""
    order = [(i + r) % num for i in range(num)]
    return order[::-1] if r % 2 else order


def time_round_robin(calls, rounds: int, *, inner=None, warmup: int = 2, min_sample_s: float = 1e-3,
                     max_inner: int = 100, budget_s: float | None = None, min_rounds: int = 1, clock=time.perf_counter,
                     progress=None, progress_offset: int = 0, progress_total: int | None = None):
    """Seconds per call of each candidate, in interleaved rounds.

    Args:
      calls: ``calls[i](r)`` runs candidate i for round r and returns once its result is ready
        (the caller blocks on it, e.g. with ``jax.block_until_ready``); it is already compiled.
      rounds: the number of rounds (at least 1 is always run).
      inner: calls per timed sample, per candidate (a list) or for all (an int); default: from
        the warm-up, enough calls for ``min_sample_s`` seconds (at most ``max_inner``).
      warmup: untimed calls of each candidate first (0 when they ran already).
      min_sample_s: the shortest timed sample worth having (see ``inner``).
      budget_s: stop after the round that spends it (timed from the first round), once
        ``min_rounds`` rounds have run.
      min_rounds: see ``budget_s``.
      clock: seconds; tests pass a fake clock.
      progress: optional ``progress(done, total, label)``, called after each round.
      progress_offset, progress_total: where the rounds sit in a longer progress count.

    Returns:
      ``(seconds, inner)``: an array (rounds run, num candidates) of seconds per call, and the
      calls per timed sample of each candidate.
    """
    num = len(calls)
    warm = [math.inf] * num
    for _ in range(warmup):
        for i, call in enumerate(calls):
            t0 = clock()
            call(0)
            warm[i] = min(warm[i], clock() - t0)
    if inner is None:
        inner = [1 if not math.isfinite(w) else max(1, min(max_inner, math.ceil(min_sample_s / max(w, 1e-9) - 1e-9)))
                 for w in warm]
    elif isinstance(inner, int):
        inner = [inner] * num
    total = progress_offset + rounds if progress_total is None else progress_total
    seconds = []
    start = clock()
    for r in range(max(rounds, 1)):
        row = [0.0] * num
        for i in round_robin_order(num, r):
            t0 = clock()
            for _ in range(inner[i]):
                calls[i](r)
            row[i] = (clock() - t0) / inner[i]
        seconds.append(row)
        if progress is not None:
            progress(progress_offset + r + 1, total, f"timing round {r + 1}/{rounds}")
        if budget_s is not None and r + 1 >= min_rounds and clock() - start >= budget_s:
            break
    return np.asarray(seconds, np.float64), list(inner)


def paired_ratio(ta, tb) -> float:
    """Median over rounds of ta/tb (the two timed in the same rounds)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.median(np.asarray(ta, np.float64) / np.asarray(tb, np.float64)))


def bootstrap_indices(n: int, reps: int, rng) -> np.ndarray:
    """``reps`` resamples (with replacement) of ``range(n)``: an int array (reps, n)."""
    return rng.integers(0, n, size=(reps, n))
