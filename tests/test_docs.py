"""The documentation site's sources (docs/, mkdocs.yml): every public name has an API entry, and
the Python code on every page runs and does what the page says (the Flax NNX and Equinox
Bayesian-MLP training examples reduce the loss and classify the toy data).

The pages' code runs as a user would run it: under jax's default promotion rules (optax and the
peer libraries rely on implicit promotion), not the strict ones of tests/conftest.py. Building
the site itself (`mkdocs build --strict`, which runs the notebooks) is `make docs`, which CI runs
after `make test`; tests/test_site.py then checks the built site, in headless Chromium too.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pathlib
import re
import warnings

import jax
import pytest

import repgrad as rg

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
# Pages whose code imports optional libraries (the [interop] extra, which make test installs).
NEEDS = {
    "guides/peer-libraries.md": ("distrax", "tensorflow_probability.substrates.jax", "numpyro"),
    "guides/flax.md": ("flax.nnx",),
    "guides/equinox.md": ("equinox",),
    "guides/numpyro.md": ("numpyro",),
}


def _pages_with_code():
    return sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if CODE_BLOCK.search(p.read_text()))


def _api_directives():
    text = "\n".join(p.read_text() for p in (DOCS / "api").glob("*.md"))
    return set(re.findall(r"^::: (repgrad[\w.]*)", text, re.M))


def test_every_public_name_has_an_api_entry():
    documented = _api_directives()
    missing = [name for name in rg.__all__ if f"repgrad.{name}" not in documented]
    assert not missing, (
        f"public names without an API entry: {missing}. Add a line `::: repgrad.NAME` to the page of "
        "docs/api/ where the name belongs (see docs/api/index.md)."
    )
    stale = [d for d in documented if d.count(".") == 1 and d.split(".")[1] not in rg.__all__]
    assert not stale, f"docs/api/ documents names that repgrad.__all__ no longer has: {stale}"


def test_nav_lists_every_page():
    # (Notebooks need no entry: docs/_hooks/notebooks.py appends any that mkdocs.yml does not list.)
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [str(p.relative_to(DOCS)) for p in DOCS.glob("**/*.md") if "_hooks" not in p.parts]
    missing = [p for p in pages if p not in nav]
    assert not missing, f"add these pages to the nav of mkdocs.yml: {missing}"


@contextlib.contextmanager
def _as_a_user():
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"), warnings.catch_warnings():
        # TFP's JAX substrate calls APIs that jax 0.10 deprecates; only its own warnings are muted.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"tensorflow_probability\.")
        yield


@pytest.mark.parametrize("page", _pages_with_code())
def test_page_code_runs(page, capsys):
    for module in NEEDS.get(page, ()):
        with _as_a_user():
            if os.environ.get("CI"):
                importlib.import_module(module)
            else:
                pytest.importorskip(module)
    path = DOCS / page
    namespace: dict = {"__name__": f"docs_{page}"}
    with _as_a_user():
        for i, block in enumerate(CODE_BLOCK.findall(path.read_text())):
            # dont_inherit: the page's code must not see this file's `from __future__ import annotations`.
            exec(compile(block, f"{path}[block {i}]", "exec", dont_inherit=True), namespace)
    if page in ("guides/flax.md", "guides/equinox.md"):
        losses, accuracy = namespace["losses"], namespace["accuracy"]
        first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
        assert last < 0.75 * first, f"{page}: the negative ELBO per example went from {first:.3f} to {last:.3f}"
        assert accuracy > 0.85, f"{page}: posterior-mean accuracy {accuracy} on three well-separated blobs"
    capsys.readouterr()
