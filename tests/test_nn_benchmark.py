"""Smoke test: benchmarks/flipout.py runs with --small."""

from __future__ import annotations

import pytest
from _bench import load


@pytest.mark.slow
def test_flipout_benchmark_small(capsys):
    load("flipout").main(["--small"])
    out = capsys.readouterr().out
    assert "Flipout / shared" in out and "independent per-example" in out
