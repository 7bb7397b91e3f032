"""The notebooks are stored without outputs (they are executed, small, by nbmake: ``make test``
runs ``pytest tests notebooks --nbmake``, and each notebook's last cell checks its results)."""

import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"clear the outputs of {path.name} (cells {dirty}), e.g. jupyter nbconvert --clear-output --inplace"
