"""Smoke test: benchmarks/numpyro_svi.py runs end to end on --small, in-process (so under the
strict promotion rules of conftest.py; the script runs numpyro under its own), and every method's
exact ELBO curve is finite and timed."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("numpyro")
pytest.importorskip("sklearn")
_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "numpyro_svi.py"


def test_numpyro_svi_small(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_numpyro_svi", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "numpyro_svi.json"
    curves = module.main(["--small", "--out", str(out)])
    assert {"TraceGraph_ELBO", "rg score:loo", "rg disarm"} <= set(curves)
    for curve in curves.values():
        assert len(curve) >= 2 and all(math.isfinite(e) and t >= 0 for t, e in curve)
    assert json.loads(out.read_text())["steps"] == 10
