"""mkdocs hook: draws the variance-study figures for the estimator guide at build time.

The curves are the exact per-sample variances of Mohamed et al. (2020), Figures 2–3, computed by
quadrature with ``repgrad.diagnostics.gaussian_per_sample_variance`` (no sampling, about a second),
so the figures always match the installed code and no image is kept in the repository. The
Monte Carlo check of these curves against repgrad's estimators is notebooks/variance_study.ipynb.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mkdocs.structure.files import File  # noqa: E402

GRIDS = {"quadratic": (-3.0, 3.0), "exp": (0.05, 3.0), "cos": (0.05, 3 * np.pi)}
TITLES = {"quadratic": "$f(x) = (x-k)^2$", "exp": "$f(x) = \\exp(-kx^2)$", "cos": "$f(x) = \\cos(kx)$"}
ESTIMATORS = {
    "score": "score function",
    "score_optimal_baseline": "score + optimal baseline",
    "pathwise": "pathwise",
    "measure_valued": "measure-valued (coupled)",
}
FIGURES = {"loc": "variance-mean.png", "scale": "variance-scale.png"}


def _figure(param: str) -> bytes:
    from repgrad.diagnostics import gaussian_per_sample_variance

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    for ax, (cost, (lo, hi)) in zip(axes, GRIDS.items(), strict=True):
        ks = np.linspace(lo, hi, 61)
        for est, label in ESTIMATORS.items():
            v = [gaussian_per_sample_variance(cost, float(k), est, loc=1.0, scale=1.0)[param] for k in ks]
            ax.plot(ks, np.maximum(v, 1e-6), label=label)
        ax.set_yscale("log")
        ax.set_title(TITLES[cost] + ", $x \\sim \\mathcal{N}(1, 1)$")
        ax.set_xlabel("k")
    symbol = "\\mu" if param == "loc" else "\\sigma"
    axes[0].set_ylabel(f"variance of one-sample $\\partial_{symbol}$")
    axes[0].legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def on_files(files, config):
    for param, name in FIGURES.items():
        files.append(File.generated(config, f"assets/{name}", content=_figure(param)))
    return files
