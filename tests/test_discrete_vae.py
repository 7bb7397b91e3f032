"""The binary VAE notebook and benchmark, run with tiny settings (REPGRAD_SMALL=1)."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_binary_vae_notebook_executes():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(ROOT / "notebooks" / "binary_vae.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "store the notebook without outputs"
    env_small = os.environ.get("REPGRAD_SMALL")
    os.environ["REPGRAD_SMALL"] = "1"  # the kernel inherits the environment
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        if env_small is None:
            os.environ.pop("REPGRAD_SMALL", None)
        else:
            os.environ["REPGRAD_SMALL"] = env_small
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "DisARM" in text and "ms/step" in text


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
