"""Executes notebooks/bayesian_nn.ipynb with REPGRAD_SMALL=1 (set by conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "bayesian_nn.ipynb"


@pytest.mark.slow
def test_bayesian_nn_notebook_runs():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    assert os.environ.get("REPGRAD_SMALL") == "1"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "store the notebook without outputs"
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("name") == "stdout"
    )
    for name in ("reparameterization", "local reparameterization", "flipout"):
        assert name in text
    assert "test log-lik" in text
