r"""One line per estimator over all parameters: variance × cost, and its ratio to the best.

The yardstick is work-normalized variance (Mohamed et al. 2020, §8; Glynn & Whitt 1992):

.. math::

  \mathrm{V} = \sum_j \mathbb{V}[\hat g_j] = \mathbb{E}\,\lVert \hat g - \mathbb{E}\hat g \rVert^2,
  \qquad \text{var×time} = \mathrm{V} \cdot t,

with t the median seconds per compiled gradient call. Averaging the K = T/t gradients one
estimator computes in T seconds has variance V/K = V·t/T, so at equal time the estimator with the
lowest V·t wins, whatever its number of samples (as long as t grows about linearly in the work per
call). V is the trace of the covariance: E‖ĝ − ∇‖² for an unbiased ĝ, the quantity SGD's progress
depends on; it adds parameters of different units, so rescale parameters first if that matters.

Uncertainty: V's standard error is that of a mean of R squared deviations; the ratio of each
estimator's V·t to the best one's comes with a 95% bootstrap interval, resampling the R
replicates (the same indices for every estimator, which shared keys make correlated) and the
timing rounds (likewise shared) together.

A variance below the float rounding floor (64 ε ‖ḡ‖)² (ε of the gradient's dtype) is rounding
noise of an exact or nearly exact estimator (enumeration, a control variate that matches f): it
is ranked as that floor, so that among such estimators the fastest one wins rather than the one
with the luckiest rounding. A NaN or infinite estimate makes an estimator's variance non-finite:
it is never the best, and its ratio is NaN.

Biased estimators (a relaxation such as Gumbel-softmax) are ranked by mean squared error, never by
variance alone: MSE = ‖bias‖² + V, with the squared bias estimated against an unbiased
``reference`` estimator from the paired replicates d_r = ĝ_r − ĝ_ref,r (same keys):
‖d̄‖² − tr(S_d)/R, an unbiased estimate of ‖E ĝ − E ĝ_ref‖² (clipped at 0); they are then ranked
by MSE × time.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .timing import bootstrap_indices

ROUNDING_FACTOR = 64.0


class Summary(NamedTuple):
    """One estimator over all parameter coordinates.

    Attributes:
      estimator: the label.
      num_samples: samples per gradient (None when unknown, e.g. ``compare`` of transforms).
      f_evals, grad_evals: per-sample evaluations of f and of its derivative per gradient
        (None when not counted).
      variance: Σ_j Var[ĝ_j], the trace of the covariance of one gradient estimate.
      variance_se: its standard error.
      rounding: True when ``variance`` is below the rounding floor, and ranked as the floor.
      time_per_grad: median seconds of one compiled gradient call (interleaved rounds).
      var_x_time: (variance, or the rounding floor) × time_per_grad; lower is better.
      var_x_evals: the same × (f_evals + grad_evals); NaN when not counted.
      ratio: var_x_time / the best estimator's; 1 for the best, NaN when not finite.
      ratio_lo, ratio_hi: the ratio's 95% bootstrap interval.
      best: whether this estimator has the lowest finite var_x_time.
      finite: whether every estimate was finite.
      replicates: R, the independent gradient estimates behind ``variance``.
      rounds: timing rounds behind ``time_per_grad``.
      mse: Σ_j (bias_j² + Var ĝ_j) against the exact gradient when one was given, else NaN.
      compile_s: seconds of the first call (compilation included), NaN when not measured.
      biased: whether the estimator is ranked by MSE against a reference (a biased estimator).
      bias_sq: for a biased estimator, its squared bias ‖E ĝ − ∇‖² estimated against the
        reference; NaN otherwise.
      mse_x_time: for a biased estimator, (variance + bias_sq) × time_per_grad, what it is
        ranked by (its ``ratio`` is of this); NaN otherwise.
    """

    estimator: str
    num_samples: int | None
    f_evals: int | None
    grad_evals: int | None
    variance: float
    variance_se: float
    rounding: bool
    time_per_grad: float
    var_x_time: float
    var_x_evals: float
    ratio: float
    ratio_lo: float
    ratio_hi: float
    best: bool
    finite: bool
    replicates: int
    rounds: int
    mse: float = float("nan")
    compile_s: float = float("nan")
    biased: bool = False
    bias_sq: float = float("nan")
    mse_x_time: float = float("nan")


def _variance_and_se(est):
    """Σ_j sample variance over axis 0, and its standard error (delta method on the mean of the
    squared deviations ‖ĝ_r − ḡ‖²)."""
    r = est.shape[0]
    dev2 = np.sum(np.square(est - est.mean(axis=0)), axis=1)
    variance = float(dev2.sum() / (r - 1))
    se = float(np.std(dev2, ddof=1) * r / (r - 1) / math.sqrt(r)) if r > 2 else float("nan")
    return variance, se


def _bootstrap_variances(est, counts):
    """Σ_j variance of each bootstrap resample, from resample counts (B, R), without copying."""
    r = est.shape[0]
    centered = est - est.mean(axis=0)
    s1 = counts @ centered
    s2 = counts @ np.square(centered)
    return np.sum(s2 - np.square(s1) / r, axis=1) / (r - 1)


def _bias_sq(d, counts=None):
    """‖d̄‖² − tr(S_d)/R (clipped at 0) for paired differences d (R, P), or per bootstrap resample."""
    r = d.shape[0]
    mean = d.mean(axis=0)
    centered = d - mean
    if counts is None:
        trace = float(np.sum(np.square(centered)) / (r - 1))
        return max(float(np.sum(np.square(mean))) - trace / r, 0.0)
    s1 = counts @ centered
    s2 = counts @ np.square(centered)
    trace = np.sum(s2 - np.square(s1) / r, axis=1) / (r - 1)
    return np.maximum(np.sum(np.square(mean + s1 / r), axis=1) - trace / r, 0.0)


def summarize(labels, estimates, seconds, *, num_samples=None, calls=None, eps=None, exact=None,
              num_bootstrap: int = 1000, seed: int = 0, biased=None, reference=None) -> tuple[Summary, ...]:
    """``Summary`` rows from raw replicates and timings.

    Args:
      labels: the estimators' labels.
      estimates: per estimator, an array (R, P): R replicates of the flattened gradient (the same
        R, and the same keys, for every estimator).
      seconds: an array (rounds, num estimators) of seconds per call, from interleaved rounds.
      num_samples: per estimator, its samples per gradient or None.
      calls: per estimator, ``(f_evals, grad_evals)`` or None.
      eps: per estimator, the machine epsilon of its gradient's dtype (default float32's).
      exact: the flattened exact gradient (P,), or None.
      num_bootstrap: bootstrap resamples for the ratio intervals.
      seed: the bootstrap's seed (the intervals are reproducible).
      biased: per estimator, whether it is biased: ranked by MSE × time against ``reference``.
      reference: the index of an unbiased estimator (the lowest-variance one is best), needed
        when any estimator is biased.

    Returns:
      A tuple of ``Summary``, in the order of ``labels``.
    """
    n = len(labels)
    seconds = np.asarray(seconds, np.float64).reshape(-1, n)
    num_samples = [None] * n if num_samples is None else list(num_samples)
    calls = [None] * n if calls is None else list(calls)
    eps = [float(np.finfo(np.float32).eps)] * n if eps is None else list(eps)
    est = [np.asarray(e, np.float64).reshape(np.shape(e)[0], -1) for e in estimates]
    r = est[0].shape[0]
    if any(e.shape[0] != r for e in est):
        raise ValueError("every estimator needs the same number of replicates, from the same keys.")
    biased = [False] * n if biased is None else [bool(b) for b in biased]
    if any(biased) and (reference is None or biased[reference]):
        raise ValueError("biased estimators are ranked by MSE against an unbiased reference: pass reference= "
                         "the index of an unbiased estimator.")
    rng = np.random.default_rng(seed)
    rep_idx = bootstrap_indices(r, num_bootstrap, rng)
    counts = np.zeros((num_bootstrap, r))
    np.add.at(counts, (np.arange(num_bootstrap)[:, None], rep_idx), 1.0)
    round_idx = bootstrap_indices(seconds.shape[0], num_bootstrap, rng)

    rows, eff, eff_boot, t_boot = [], [], [], []
    for i in range(n):
        e = est[i]
        finite = bool(np.all(np.isfinite(e)))
        t = float(np.median(seconds[:, i]))
        if finite:
            variance, se = _variance_and_se(e)
            floor = (ROUNDING_FACTOR * eps[i] * float(np.linalg.norm(e.mean(axis=0)))) ** 2
            rounding = variance < floor
            v_eff = max(variance, floor)
            v_boot = np.maximum(_bootstrap_variances(e, counts), floor)
        else:
            variance = se = v_eff = float("nan")
            rounding = False
            v_boot = np.full(num_bootstrap, np.nan)
        mse = float("nan")
        if exact is not None and finite:
            mse = float(np.sum(np.square(e.mean(axis=0) - np.asarray(exact, np.float64).reshape(-1)))) + variance
        c = calls[i]
        evals = None if c is None else c[0] + c[1]
        vt = v_eff * t
        bias_sq = mse_x_time = float("nan")
        rank, rank_boot = vt, v_boot
        if biased[i] and finite and np.all(np.isfinite(est[reference])):
            d = e - est[reference]
            bias_sq = _bias_sq(d)
            rank = mse_x_time = (v_eff + bias_sq) * t
            rank_boot = v_boot + _bias_sq(d, counts)
        elif biased[i]:
            rank = float("nan")  # no finite reference: a biased estimator cannot be ranked
        eff.append(rank if finite and math.isfinite(rank) else math.inf)
        eff_boot.append(rank_boot)
        t_boot.append(np.median(seconds[round_idx, i], axis=1))
        rows.append(dict(
            estimator=labels[i], num_samples=num_samples[i], f_evals=None if c is None else c[0],
            grad_evals=None if c is None else c[1], variance=variance, variance_se=se, rounding=rounding,
            time_per_grad=t, var_x_time=vt, var_x_evals=float("nan") if evals is None else v_eff * evals,
            finite=finite and math.isfinite(vt), replicates=r, rounds=seconds.shape[0], mse=mse,
            biased=biased[i], bias_sq=bias_sq, mse_x_time=mse_x_time,
        ))
    best = int(np.argmin(eff)) if any(math.isfinite(x) for x in eff) else None
    out = []
    for i, row in enumerate(rows):
        if best is None or not row["finite"]:
            ratio = lo = hi = float("nan")
        else:
            if not math.isfinite(eff[i]):
                out.append(Summary(**row, ratio=float("nan"), ratio_lo=float("nan"), ratio_hi=float("nan"), best=False))
                continue
            ratio = _ratio(eff[i], eff[best], rows[i]["time_per_grad"], rows[best]["time_per_grad"])
            boot = _ratio(eff_boot[i] * t_boot[i], eff_boot[best] * t_boot[best], t_boot[i], t_boot[best])
            lo, hi = (float(q) for q in np.nanquantile(boot, [0.025, 0.975])) if np.any(np.isfinite(boot)) else (ratio, ratio)
        out.append(Summary(**row, ratio=ratio, ratio_lo=lo, ratio_hi=hi, best=i == best))
    return tuple(out)


def _ratio(a, b, ta, tb):
    """a / b, with 0/0 read as the ratio of times (two exact estimators differ only in cost)."""
    a, b, ta, tb = (np.asarray(x, np.float64) for x in (a, b, ta, tb))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(b > 0, a / np.where(b > 0, b, 1.0), np.where(a > 0, np.inf, ta / tb))
    return float(out) if out.ndim == 0 else out
