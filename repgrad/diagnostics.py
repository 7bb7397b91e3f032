r"""Diagnostics: gradient estimators side by side — mean, variance, SNR, bias and cost.

For each estimator ĝ of ∇θ E_{p_θ}[f], ``compare`` and ``compare_estimators`` draw R
independent estimates (one ``jax.vmap`` over R split keys, compiled once per estimator)
and report, per parameter θ_i,

.. math::

  \bar g_i = \frac1R \sum_r \hat g_i^{(r)}, \quad
  \mathbb{V}_i = \frac{1}{R-1} \sum_r (\hat g_i^{(r)} - \bar g_i)^2, \quad
  \mathrm{SNR}_i = |\bar g_i| / \sqrt{\mathbb{V}_i},

the bias ḡ_i − ∇θ_i E[f] against an exact gradient when one is given (with its
standard error sqrt(V_i / R)), and the cost: the median wall time of one jitted
gradient call after compilation, and the number of per-sample evaluations of f and of
its derivative, counted from the estimator's jaxpr (``count_calls``). The efficiency
figure is variance × cost (``var_x_time``, ``var_x_evals``): an estimator that is twice
as noisy but four times cheaper wins, since averaging four of its gradients halves
the variance (Mohamed et al. 2020, §3.3: "computational cost ... and variance" go
together).

Also here: Gaussian test problems with exact gradients (``gaussian_problem``) and the
exact per-sample variances of the Gaussian estimators by quadrature
(``gaussian_per_sample_variance``, ``optimal_constant_baseline``).

References:
  Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo Gradient Estimation in Machine
  Learning", JMLR 2020 (arXiv:1906.10652), §3 and §8.
  Rainforth et al., "Tighter Variational Bounds are Not Necessarily Better", ICML 2018
  (the gradient signal-to-noise ratio).
"""

from ._src.diagnostics.compare import DEFAULT_ESTIMATORS as DEFAULT_ESTIMATORS
from ._src.diagnostics.compare import compare as compare
from ._src.diagnostics.compare import compare_estimators as compare_estimators
from ._src.diagnostics.compare import parse_estimator as parse_estimator
from ._src.diagnostics.count import CallCount as CallCount
from ._src.diagnostics.count import count_calls as count_calls
from ._src.diagnostics.count import counted as counted
from ._src.diagnostics.problems import COSTS as COSTS
from ._src.diagnostics.problems import Problem as Problem
from ._src.diagnostics.problems import exact_gaussian_gradient as exact_gaussian_gradient
from ._src.diagnostics.problems import gaussian_problem as gaussian_problem
from ._src.diagnostics.problems import normal_dist as normal_dist
from ._src.diagnostics.progress import progress_bar as progress_bar
from ._src.diagnostics.summary import Summary as Summary
from ._src.diagnostics.summary import summarize as summarize
from ._src.diagnostics.table import ComparisonTable as ComparisonTable
from ._src.diagnostics.table import Row as Row
from ._src.diagnostics.table import plot as plot
from ._src.diagnostics.variance import gaussian_per_sample_variance as gaussian_per_sample_variance
from ._src.diagnostics.variance import optimal_constant_baseline as optimal_constant_baseline

__all__ = [
    "CallCount",
    "COSTS",
    "ComparisonTable",
    "DEFAULT_ESTIMATORS",
    "Problem",
    "Row",
    "compare",
    "compare_estimators",
    "count_calls",
    "counted",
    "exact_gaussian_gradient",
    "gaussian_per_sample_variance",
    "gaussian_problem",
    "normal_dist",
    "optimal_constant_baseline",
    "parse_estimator",
    "plot",
    "progress_bar",
    "summarize",
    "Summary",
]
