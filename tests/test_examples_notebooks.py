"""Executes notebooks/vae.ipynb and notebooks/policy_gradient.ipynb with REPGRAD_SMALL=1 (conftest).

The notebooks are stored without outputs; executing them checks that they run end to end
on tiny settings and print the comparison they promise (ELBO per estimator, gradient
variance ratios, learning curves for both environments).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _execute(name):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    assert os.environ.get("REPGRAD_SMALL") == "1"
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"), (
        f"store {name} without outputs"
    )
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("name") == "stdout"
    )


def _numbers(pattern, text):
    return [float(m) for m in re.findall(pattern, text)]


@pytest.mark.slow
def test_vae_notebook_runs():
    text = _execute("vae.ipynb")
    assert "small=True" in text
    names = ("pathwise", "score (no baseline)", "score + LOO baseline", "score + optimal baseline")
    for name in names:
        assert re.search(rf"{re.escape(name)}\s+final train ELBO\s+-?\d", text), name
    elbos = _numbers(r"test ELBO\s+(-?[\d.]+)", text)
    assert len(elbos) == len(names) and all(e < 0 for e in elbos)  # a bound on a log-likelihood of binary images
    ratios = _numbers(r"\(\s*([\d.]+)x pathwise\)", text)
    assert len(ratios) == len(names) and ratios[0] == 1.0


@pytest.mark.slow
def test_policy_gradient_notebook_runs():
    text = _execute("policy_gradient.ipynb")
    assert "small=True" in text
    assert text.count("REINFORCE + LOO baseline") >= 2  # CartPole and Pendulum
    assert "pathwise (through env.step)" in text
    variances = _numbers(r"grad variance at init\s+([\d.e+-]+)", text)
    assert len(variances) == 5 and all(v > 0 for v in variances)
