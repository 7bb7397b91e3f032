"""Smoke test: benchmarks/discrete_variance.py runs end to end on --small settings (in-process,
under conftest's strict promotion rules), and its rows say what the estimators are."""

import math

import pytest
from _bench import load


@pytest.mark.slow
def test_discrete_variance_small(tmp_path, capsys):
    bench = load("discrete_variance")
    results = bench.main(["--small", "--problems", "bernoulli20_toy", "--json", str(tmp_path / "dv.json")])
    rows = results["bernoulli20_toy"][42]
    expected = {"score + LOO", "ARM", "DisARM", "REBAR", "RELAX", "IndeCateR", "double CV", "RODEO", "unordered set",
                "Rao-Blackwell top-k", "Gumbel-Rao (τ=0.5, K=10)", "straight-through (τ=0.5)"}
    assert set(rows) == expected
    for label, r in rows.items():
        assert r["f_evals"] <= 42 and math.isfinite(r["variance"]) and math.isfinite(r["mse"]), label
    # the toy is separable: IndeCateR's sum over each variable is exact (variance = float rounding)
    assert rows["IndeCateR"]["variance"] < 1e-6 * rows["DisARM"]["variance"]
    assert rows["DisARM"]["variance"] < rows["ARM"]["variance"]
    assert "| DisARM |" in capsys.readouterr().out and (tmp_path / "dv.json").stat().st_size > 0
