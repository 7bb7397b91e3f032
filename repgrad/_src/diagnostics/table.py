"""``ComparisonTable``: the plain result of ``repgrad.diagnostics.compare``."""

from __future__ import annotations

import math
from typing import NamedTuple


class Row(NamedTuple):
    """One estimator and one parameter (or one element of an array parameter).

    Attributes:
      estimator: the estimator's label.
      param: the parameter's path, e.g. ``"loc"`` or ``"w[1]"``; an array parameter
        with more than ``max_elements`` elements is one row, ``"w (norm)"``: its mean,
        exact and bias are the Euclidean norms of the mean, exact and bias vectors, its
        variance is the sum of the elements' variances (the trace of their covariance,
        E‖ĝ − Eĝ‖²), its SNR ‖mean‖/√variance, and its bias_se √(variance / R), so an
        unbiased estimator shows bias/SE ≈ 1 there (E‖ḡ − ∇‖² = variance / R).
      mean: mean of the gradient estimates over the replicates.
      exact: the exact gradient, NaN when none was given.
      bias: mean − exact (NaN without exact).
      bias_se: the standard error of ``mean``, sqrt(variance / replicates); a bias
        well inside ±3·bias_se is indistinguishable from zero.
      variance: variance of one gradient estimate (with the estimator's own
        ``num_samples``) over the replicates.
      snr: signal-to-noise ratio |mean| / sqrt(variance).
      time_per_grad: median wall-clock seconds of one jitted gradient call.
      f_evals: per-sample evaluations of f per gradient (None when not counted).
      grad_evals: derivative passes (VJP/JVP) through f per gradient (None when not counted).
      var_x_time: variance × time_per_grad, the variance of the estimate one second of
        compute buys (times one second); lower is better.
      var_x_evals: variance × (f_evals + grad_evals), the same per evaluation.
      replicates: number of independent gradient estimates the statistics use.
      num_samples: the estimator's samples per gradient (None when not known).
    """

    estimator: str
    param: str
    mean: float
    exact: float
    bias: float
    bias_se: float
    variance: float
    snr: float
    time_per_grad: float
    f_evals: int | None
    grad_evals: int | None
    var_x_time: float
    var_x_evals: float
    replicates: int
    num_samples: int | None = None


def _fmt(x, spec=".4g"):
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return format(x, spec)


def _fmt_time(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


_COLUMNS = (
    ("estimator", "estimator", "<", lambda r: r.estimator),
    ("param", "param", "<", lambda r: r.param),
    ("num_samples", "N", ">", lambda r: _fmt(r.num_samples, "d")),
    ("mean", "mean", ">", lambda r: _fmt(r.mean)),
    ("exact", "exact", ">", lambda r: _fmt(r.exact)),
    ("bias/SE", "bias/SE", ">", lambda r: _fmt(r.bias / r.bias_se if r.bias_se > 0 else float("nan"), "+.1f")),
    ("variance", "variance", ">", lambda r: _fmt(r.variance)),
    ("snr", "SNR", ">", lambda r: _fmt(r.snr, ".3g")),
    ("time_per_grad", "time/grad", ">", lambda r: _fmt_time(r.time_per_grad)),
    ("f_evals", "f evals", ">", lambda r: _fmt(r.f_evals, "d")),
    ("grad_evals", "∇f evals", ">", lambda r: _fmt(r.grad_evals, "d")),
    ("var_x_time", "var×time", ">", lambda r: _fmt(r.var_x_time, ".3g")),
)


class ComparisonTable(NamedTuple):
    """Estimators side by side; ``str(table)`` is a text table.

    Attributes:
      rows: one ``Row`` per estimator and parameter.
      title: a heading (the problem), may be empty.
      notes: extra lines printed under the table (e.g. estimators that were skipped).
      summary: one ``Summary`` per estimator over all parameters (summed variance, cost,
        variance × time and its ratio to the best with a 95% interval); empty for a table
        built by hand.
      seconds: wall-clock seconds the comparison took, compilation included (NaN if unknown).
    """

    rows: tuple
    title: str = ""
    notes: tuple = ()
    summary: tuple = ()
    seconds: float = float("nan")

    @property
    def best(self) -> str | None:
        """The label of the estimator with the lowest finite variance × time (summed over
        parameters), or None when no estimator has one. A NaN/inf variance is never best."""
        return next((s.estimator for s in self.summary if s.best), None)

    def summary_of(self, estimator: str):
        """The ``Summary`` of one estimator; ``KeyError`` names those there are."""
        for s in self.summary:
            if s.estimator == estimator:
                return s
        raise KeyError(f"no summary for {estimator!r}; the table has {[s.estimator for s in self.summary]}")

    @property
    def estimators(self) -> list[str]:
        """Estimator labels in table order."""
        return list(dict.fromkeys(r.estimator for r in self.rows))

    def records(self) -> list[dict]:
        """The rows as a list of plain dicts (e.g. for ``pandas.DataFrame``)."""
        return [r._asdict() for r in self.rows]

    def to_dict(self) -> dict:
        """``{estimator: {param: row dict}}`` plus ``title`` and ``notes`` keys."""
        out = {"title": self.title, "notes": list(self.notes), "estimators": {}, "best": self.best,
               "summary": {s.estimator: s._asdict() for s in self.summary}, "seconds": self.seconds}
        for r in self.rows:
            out["estimators"].setdefault(r.estimator, {})[r.param] = r._asdict()
        return out

    def row(self, estimator: str, param: str) -> Row:
        """The row for ``estimator`` and ``param``; ``KeyError`` names what exists."""
        for r in self.rows:
            if r.estimator == estimator and r.param == param:
                return r
        have = sorted({(r.estimator, r.param) for r in self.rows})
        raise KeyError(f"no row ({estimator!r}, {param!r}); the table has {have}")

    def to_text(self, columns=None) -> str:
        """A fixed-width text table; ``columns`` picks and orders column keys
        (default: all of estimator, param, mean, exact, bias/SE, variance, snr,
        time_per_grad, f_evals, grad_evals, var_x_time)."""
        cols = _COLUMNS if columns is None else [c for key in columns for c in _COLUMNS if c[0] == key]
        if columns is not None and len(cols) != len(columns):
            known = [c[0] for c in _COLUMNS]
            raise ValueError(f"Unknown column in {list(columns)}; choose from {known}.")
        cells = [[c[1] for c in cols]] + [[c[3](r) for c in cols] for r in self.rows]
        widths = [max(len(row[j]) for row in cells) for j in range(len(cols))]
        lines = []
        if self.title:
            lines.append(self.title)
        for i, row in enumerate(cells):
            lines.append("  ".join(format(v, f"{c[2]}{w}") for v, c, w in zip(row, cols, widths, strict=True)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.extend(self.notes)
        if self.summary and len(self.summary) > 1:
            lines.append("")
            lines.append(self.summary_text())
        return "\n".join(lines)

    def summary_text(self) -> str:
        """The per-estimator summary as a text table: N, f + ∇f evaluations, the variance summed
        over parameters ± its standard error, time per gradient, variance × time and its ratio
        to the best with a 95% interval."""
        header = ("estimator", "N", "evals", "Σ variance", "± SE", "time/grad", "var×time", "× best", "95% interval")
        cells = [header]
        for s in self.summary:
            evals = None if s.f_evals is None else s.f_evals + s.grad_evals
            if not s.finite:
                ratio, interval = "not finite", ""
            elif s.best:
                ratio, interval = "best", ""
            else:
                ratio, interval = _fmt(s.ratio, ".3g"), f"[{_fmt(s.ratio_lo, '.3g')}, {_fmt(s.ratio_hi, '.3g')}]"
            variance = _fmt(s.variance) + (" (≈0)" if s.rounding else "")
            vt = _fmt(s.mse_x_time, ".3g") + " (MSE)" if s.biased else _fmt(s.var_x_time, ".3g")
            cells.append((s.estimator, _fmt(s.num_samples, "d"), _fmt(evals, "d"), variance, _fmt(s.variance_se, ".2g"),
                          _fmt_time(s.time_per_grad), vt, ratio, interval))
        widths = [max(len(row[j]) for row in cells) for j in range(len(header))]
        align = "<>>>>>>><"
        out = ["per estimator, all parameters: Σ variance = sum of the per-coordinate variances;",
               "var×time = Σ variance × time/grad (lower is better); × best = var×time / the best one's"]
        for i, row in enumerate(cells):
            out.append("  ".join(format(v, f"{a}{w}") for v, a, w in zip(row, align, widths, strict=True)).rstrip())
            if i == 0:
                out.append("  ".join("-" * w for w in widths))
        if any(s.biased for s in self.summary):
            out.append("(MSE): a biased estimator, ranked by (its squared bias against an unbiased reference + "
                       "Σ variance) × time/grad.")
        if any(s.rounding for s in self.summary):
            out.append("(≈0): below float rounding, ranked as the rounding floor, so the fastest exact estimator wins.")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_text()

    def plot(self, path=None, *, ax=None):
        """Bar charts of variance and var×time per estimator and parameter (log scale).

        Needs matplotlib (imported here, not by repgrad). Writes ``path`` when given.

        Returns:
          The matplotlib figure.
        """
        return plot(self, path, ax=ax)


def plot(table: ComparisonTable, path=None, *, ax=None):
    """See ``ComparisonTable.plot``."""
    try:
        import matplotlib

        if path is not None and ax is None:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from e
    params = list(dict.fromkeys(r.param for r in table.rows))
    names = table.estimators
    if ax is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    else:
        axes = ax
        fig = axes[0].figure
    width = 0.8 / max(len(params), 1)
    for j, param in enumerate(params):
        xs, var, eff = [], [], []
        for i, name in enumerate(names):
            r = next((r for r in table.rows if r.estimator == name and r.param == param), None)
            if r is None:
                continue
            xs.append(i + (j - (len(params) - 1) / 2) * width)
            var.append(r.variance)
            eff.append(r.var_x_time)
        axes[0].bar(xs, var, width, label=param)
        axes[1].bar(xs, eff, width, label=param)
    for a, label in zip(axes, ("variance of one gradient", "variance × seconds per gradient"), strict=True):
        a.set_xticks(range(len(names)))
        a.set_xticklabels(names, rotation=20, ha="right")
        a.set_yscale("log")
        a.set_ylabel(label)
    axes[0].legend(title="parameter", fontsize=8, framealpha=0.6)
    if table.title:
        fig.suptitle(table.title)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
