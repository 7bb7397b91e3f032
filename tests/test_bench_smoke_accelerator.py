"""Smoke test: benchmarks/accelerator.py runs end to end with --small, on CPU.

The script is meant to be run once, unattended, on a lent GPU; this keeps it runnable.
In-process, so it also runs under conftest.py's strict promotion rules. Checks the
structure of what it writes, never timings.
"""

import json
import math

import pytest
from _bench import load


@pytest.mark.slow
def test_accelerator_small(tmp_path):
    bench = load("accelerator")
    results = bench.main(["--small", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "accelerator.json").read_text())
    assert saved["machine"]["device"] and saved["machine"]["jax"]
    assert set(saved["sections"]) == {"overhead", "flipout", "peers"}

    overhead = results["sections"]["overhead"]
    names = {r["name"] for r in overhead["rows"]}
    assert {"pathwise_grad", "score_grad", "measure_valued_grad"} <= names
    assert all(math.isfinite(r["ratio"]) and r["peak_a"] > 0 for r in overhead["rows"])

    flip = results["sections"]["flipout"]["rows"]
    estimators = {r["estimator"] for r in flip}
    assert {"shared sample", "flipout", "independent per-example"} <= estimators
    assert {r["batch"] for r in flip} == {8}
    shared = [r for r in flip if r["estimator"] == "shared sample"]
    assert all(r["ratio"] == 1.0 and r["matmuls"] >= 2 for r in shared)
    flipout = [r for r in flip if r["estimator"] == "flipout"]
    assert all(r["matmuls"] >= 4 for r in flipout)  # two more than the shared-sample layer

    lr = results["sections"]["peers"]["problems"]["lr"]["rows"]
    assert "error" not in lr["repgrad pathwise"]
    assert lr["repgrad pathwise"]["median_ms"] > 0 and lr["repgrad pathwise"]["grad_var"] > 0

    text = (tmp_path / "accelerator.md").read_text()
    assert text.startswith("# repgrad on ")
    for title in ("Overhead against hand-written JAX", "Flipout against", "Peers:"):
        assert title in text
