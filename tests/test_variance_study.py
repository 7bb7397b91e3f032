"""Mohamed et al. (2020) Figures 2-3: exact per-sample variances (quadrature) against repgrad's
own one-sample estimators, and the notebook that plots them."""

import math
import os
import pathlib

import jax
import pytest

from repgrad import _variance_study as vs
from repgrad import diagnostics as dg

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "variance_study.ipynb"


def test_quadrature_closed_forms():
    # x ~ N(0, 1), f = x²: pathwise Var(2x) = 4, Var(2x·ε) = Var(2ε²) = 8; score Var(x³) = 15,
    # Var(x²(x² − 1)) = E[x⁴(x²−1)²] − 2² = 105 − 2·15 + 3 − 4 = 74; b* = (3, 5).
    assert vs.gaussian_per_sample_variance("quadratic", 0.0, "pathwise", loc=0.0) == pytest.approx(
        {"loc": 4.0, "scale": 8.0}, rel=1e-10)
    assert vs.gaussian_per_sample_variance("quadratic", 0.0, "score", loc=0.0) == pytest.approx(
        {"loc": 15.0, "scale": 74.0}, rel=1e-10)
    assert vs.optimal_constant_baseline("quadratic", 0.0, loc=0.0) == pytest.approx({"loc": 3.0, "scale": 5.0})
    # Coupled MVD for ∂μ is zero-variance for an f symmetric about μ (here k = μ).
    assert vs.gaussian_per_sample_variance("quadratic", 1.0, "measure_valued")["loc"] == pytest.approx(0.0, abs=1e-10)
    # Optimal baseline never increases the variance; it is the minimum over constants.
    for cost, k in [("quadratic", -2.0), ("cos", 2.0), ("exp", 0.5)]:
        plain = vs.gaussian_per_sample_variance(cost, k, "score")
        best = vs.gaussian_per_sample_variance(cost, k, "score_optimal_baseline")
        assert all(best[n] <= plain[n] + 1e-12 for n in plain)
    with pytest.raises(ValueError, match="choose one of"):
        vs.gaussian_per_sample_variance("cos", 1.0, "nope")


# One point per cost; all four estimators of the paper (k and the cost are traced, so one
# compile per estimator). |sample variance − exact| < 5 SE with SE from the fourth central moment;
# a 5-SE bound fails by chance with probability ~6e-7 per check (24 checks here).
POINTS = [("quadratic", -1.5), ("exp", 1.0), ("cos", 2.0)]
ESTIMATORS = ("score", "score_optimal_baseline", "pathwise", "measure_valued")


@pytest.mark.parametrize("cost, k", POINTS)
def test_monte_carlo_variance_matches_quadrature(cost, k):
    key = jax.random.key(POINTS.index((cost, k)))
    for i, est in enumerate(ESTIMATORS):
        samples = vs.sample_per_sample_estimates(cost, k, est, jax.random.fold_in(key, i), 20_000)
        exact_var = vs.gaussian_per_sample_variance(cost, k, est)
        exact_mean = dg.exact_gaussian_gradient(cost, k, 1.0, 1.0)
        for name in ("loc", "scale"):
            x = samples[name]
            v, se = vs.variance_and_se(x)
            assert abs(v - exact_var[name]) < 5 * se + 1e-6, (cost, k, est, name, v, exact_var[name], se)
            mean_se = math.sqrt(v / x.shape[0])
            assert abs(x.mean() - exact_mean[name]) < 5 * mean_se + 1e-6, (est, name)


@pytest.mark.slow
def test_notebook_runs_small():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "store the notebook without outputs"
    env_before = os.environ.get("REPGRAD_SMALL")
    os.environ["REPGRAD_SMALL"] = "1"  # inherited by the kernel
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("REPGRAD_SMALL")
        else:
            os.environ["REPGRAD_SMALL"] = env_before
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "SMALL=True" in text and "max |z|" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2
