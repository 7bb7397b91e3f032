"""The binary VAE benchmark, run as a script with tiny settings (--small); the notebook is
executed by nbmake (make test)."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_binary_vae_benchmark_smoke(tmp_path):
    env = dict(os.environ, REPGRAD_SMALL="1", XLA_FLAGS="")
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "binary_vae.py"), "--small", "--estimators", "relax", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| linear | relax |" in out.stdout
    for suffix in ("elbo", "grad_var", "time"):
        assert (tmp_path / f"binary_vae_{suffix}.png").stat().st_size > 0
