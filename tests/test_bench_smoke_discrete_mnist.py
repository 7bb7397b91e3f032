"""Smoke test: the MNIST binary-VAE benchmark (DisARM protocol) runs on --small settings with the
new estimators, and reports the 100-sample bounds and the published-ordering column."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_binary_vae_mnist_small(tmp_path):
    env = dict(os.environ, REPGRAD_SMALL="1", XLA_FLAGS="")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "binary_vae.py"), "--small", "--estimators", "disarm,rodeo,rao_blackwell",
         "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| linear |")]
    assert len(rows) == 3 and all("nan" not in row for row in rows), rows
    assert "test 100-sample bound" in out.stdout and "papers' ordering" in out.stdout
    for suffix in ("elbo", "elbo_time", "grad_var", "time"):
        assert (tmp_path / f"binary_vae_{suffix}.png").stat().st_size > 0
