"""Mohamed et al. (2020) Figures 2-3: exact per-sample variances (quadrature, in
repgrad.diagnostics) against repgrad's own one-sample estimators, drawn by the notebook's
support module (notebooks/variance_study_support.py, loaded by path). The notebook itself is
executed by nbmake (make test)."""

import importlib.util
import math
import pathlib

import jax
import pytest

from repgrad import diagnostics as dg

_SUPPORT = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "variance_study_support.py"


def _load_support():
    spec = importlib.util.spec_from_file_location("variance_study_support", _SUPPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mc = _load_support()


def test_quadrature_closed_forms():
    # x ~ N(0, 1), f = x²: pathwise Var(2x) = 4, Var(2x·ε) = Var(2ε²) = 8; score Var(x³) = 15,
    # Var(x²(x² − 1)) = E[x⁴(x²−1)²] − 2² = 105 − 2·15 + 3 − 4 = 74; b* = (3, 5).
    assert dg.gaussian_per_sample_variance("quadratic", 0.0, "pathwise", loc=0.0) == pytest.approx(
        {"loc": 4.0, "scale": 8.0}, rel=1e-10)
    assert dg.gaussian_per_sample_variance("quadratic", 0.0, "score", loc=0.0) == pytest.approx(
        {"loc": 15.0, "scale": 74.0}, rel=1e-10)
    assert dg.optimal_constant_baseline("quadratic", 0.0, loc=0.0) == pytest.approx({"loc": 3.0, "scale": 5.0})
    # Coupled MVD for ∂μ is zero-variance for an f symmetric about μ (here k = μ).
    assert dg.gaussian_per_sample_variance("quadratic", 1.0, "measure_valued")["loc"] == pytest.approx(0.0, abs=1e-10)
    # Optimal baseline never increases the variance; it is the minimum over constants.
    for cost, k in [("quadratic", -2.0), ("cos", 2.0), ("exp", 0.5)]:
        plain = dg.gaussian_per_sample_variance(cost, k, "score")
        best = dg.gaussian_per_sample_variance(cost, k, "score_optimal_baseline")
        assert all(best[n] <= plain[n] + 1e-12 for n in plain)
    with pytest.raises(ValueError, match="choose one of"):
        dg.gaussian_per_sample_variance("cos", 1.0, "nope")


# One point per cost; all four estimators of the paper (k and the cost are traced, so one
# compile per estimator). |sample variance − exact| < 5 SE with SE from the fourth central moment;
# a 5-SE bound fails by chance with probability ~6e-7 per check (24 checks here).
POINTS = [("quadratic", -1.5), ("exp", 1.0), ("cos", 2.0)]
ESTIMATORS = ("score", "score_optimal_baseline", "pathwise", "measure_valued")


@pytest.mark.parametrize("cost, k", POINTS)
def test_monte_carlo_variance_matches_quadrature(cost, k):
    key = jax.random.key(POINTS.index((cost, k)))
    for i, est in enumerate(ESTIMATORS):
        samples = mc.sample_per_sample_estimates(cost, k, est, jax.random.fold_in(key, i), 20_000)
        exact_var = dg.gaussian_per_sample_variance(cost, k, est)
        exact_mean = dg.exact_gaussian_gradient(cost, k, 1.0, 1.0)
        for name in ("loc", "scale"):
            x = samples[name]
            v, se = mc.variance_and_se(x)
            assert abs(v - exact_var[name]) < 5 * se + 1e-6, (cost, k, est, name, v, exact_var[name], se)
            mean_se = math.sqrt(v / x.shape[0])
            assert abs(x.mean() - exact_mean[name]) < 5 * mean_se + 1e-6, (est, name)
