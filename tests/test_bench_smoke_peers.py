"""Smoke test: benchmarks/peers.py runs end to end on --small settings.

Runs in-process (so the JAX rows also run under conftest's strict promotion rules); the
Pyro rows run in a subprocess of their own, as in the full benchmark. Peers are optional:
a peer that is not installed must show up as a reported row, never as a crash.
"""

import math

import pytest
from _bench import load


@pytest.mark.slow
def test_peers_small(tmp_path, capsys):
    bench = load("peers")
    results = bench.main(["--small", "--problems", "lr", "--json", str(tmp_path / "peers.json")])
    rows = results["lr"]["rows"]
    for name in ("repgrad pathwise", "repgrad score+LOO"):
        r = rows[name]
        assert "error" not in r, r
        assert r["median_ms"] > 0 and r["compile_s"] > 0 and r["peak_bytes"] > 0
        assert math.isfinite(r["grad_var"]) and r["grad_var"] > 0
    # the score function is much noisier than pathwise on this model, even with LOO
    assert rows["repgrad score+LOO"]["grad_var"] > rows["repgrad pathwise"]["grad_var"]
    try:
        import numpyro  # noqa: F401
    except ImportError:
        assert "not installed" in rows["numpyro Trace_ELBO"]["error"]
    else:
        assert "error" not in rows["numpyro Trace_ELBO"], rows["numpyro Trace_ELBO"]
    # TFP and Pyro: either a measured row or a reported error, both printed in the table
    out = capsys.readouterr().out
    for name in rows:
        assert f"| {name} |" in out
    assert (tmp_path / "peers.json").exists()
