"""Smoke test: benchmarks/numpyro_svi.py runs end to end on --small, in-process (so under the
strict promotion rules of conftest.py; the script runs numpyro under its own), and every method's
exact ELBO curve is finite and timed."""

import json
import math

import pytest
from _bench import load

pytest.importorskip("numpyro")
pytest.importorskip("sklearn")


def test_numpyro_svi_small(tmp_path):
    module = load("numpyro_svi")
    out = tmp_path / "numpyro_svi.json"
    curves = module.main(["--small", "--out", str(out)])
    assert {"TraceGraph_ELBO", "rg score:loo", "rg disarm"} <= set(curves)
    for curve in curves.values():
        assert len(curve) >= 2 and all(math.isfinite(e) and t >= 0 for t, e in curve)
    assert json.loads(out.read_text())["steps"] == 10
