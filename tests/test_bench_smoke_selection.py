"""Smoke test: benchmarks/selection.py runs end to end on --small settings (in-process, under
conftest's strict promotion rules): pilots, the independent long run, the ratio to the long run's
best and the pilot's cost in training steps, for an estimator problem and a graph."""

import json
import math

import pytest
from _bench import load


@pytest.mark.slow
def test_selection_small(tmp_path, capsys):
    bench = load("selection")
    out = tmp_path / "selection.json"
    md = tmp_path / "selection.md"
    problems = "3 Bernoulli, non-separable;rg.stochastic graph, 2 auto nodes"
    results = bench.main(["--small", "--problems", problems, "--json", str(out), "--results", str(md)])
    assert [r["problem"] for r in results] == problems.split(";")
    bernoulli, graph = results
    assert set(bernoulli["candidates"]) == {"enumeration", "disarm", "score:loo"}
    assert bernoulli["best"] == "enumeration" and all(r["choice"] == "enumeration" for r in bernoulli["pilots"])
    assert len(graph["candidates"]) == 4 and "," in graph["best"]
    for res in results:
        assert len(res["pilots"]) == 2
        cold, warm = res["pilots"]
        assert cold["compile_s"] > 0 and warm["compile_s"] == 0.0  # the second pilot finds them compiled
        for r in res["pilots"]:
            assert math.isfinite(r["ratio"]) and r["ratio"] >= 1.0 - 1e-9 and r["steps"] > 0
    text = capsys.readouterr().out
    assert "| 3 Bernoulli, non-separable | 3 | enumeration |" in text and "within 1.25×" in text
    assert json.loads(out.read_text())["meta"]["pilots"] == 2 and md.read_text().startswith("| problem |")
