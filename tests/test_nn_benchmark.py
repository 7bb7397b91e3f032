"""Smoke test: benchmarks/flipout.py runs with --small."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "flipout.py"


@pytest.mark.slow
def test_flipout_benchmark_small(capsys):
    spec = importlib.util.spec_from_file_location("flipout_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--small"])
    out = capsys.readouterr().out
    assert "Flipout / shared" in out and "independent per-example" in out
