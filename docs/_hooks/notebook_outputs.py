"""mkdocs hook: the notebook pages show the outputs of a run made when the site is built.

The notebooks in notebooks/ are kept without outputs. Each is run here in a fresh kernel, with
``REPGRAD_SMALL=1`` (the seconds-long settings that the test suite also runs) and the repgrad of
this source tree, and mkdocs-jupyter renders the executed copy, so every figure, table and printed
number on the site comes from the code and the library it documents. A cell that raises fails the
build. The kernel shows every matplotlib figure still open after a cell as a PNG under that cell,
as Jupyter's inline backend does: most notebooks select the non-interactive Agg backend, under
which Jupyter itself would show no figure. Each page says that its outputs come from the small
settings.

Executed copies are kept in build/docs/notebooks/ under a hash of the notebook, its helper
modules and repgrad's sources, so a rebuild with nothing changed runs nothing.
``REPGRAD_DOCS_JOBS`` sets how many notebooks run at once (default: 2).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from mkdocs.exceptions import PluginError
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

log = logging.getLogger("mkdocs.hooks.notebook_outputs")

TIMEOUT_S = 900  # per cell
# Run in the kernel before the notebook's own cells (and not shown): after every cell, each open
# figure is shown as a PNG and closed. (Figures are already shown and closed by the inline backend
# where a notebook keeps it.)
SETUP = """\
def _docs_show_open_figures(result):
    import io, sys
    if "matplotlib.pyplot" not in sys.modules:
        return
    import matplotlib.pyplot as plt
    from IPython.display import Image, display
    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        display(Image(data=buf.getvalue(), format="png"))

import warnings
# plt.show() under Agg warns that it cannot show; the figure is shown by the function above.
warnings.filterwarnings("ignore", message=".*is non-interactive, and thus cannot be shown")
# tqdm.auto (numpyro's progress bar) falls back to text without ipywidgets: no need to say so.
warnings.filterwarnings("ignore", message="IProgress not found")
get_ipython().events.register("post_run_cell", _docs_show_open_figures)
del warnings
"""
NOTE = (
    '<div class="admonition info"><p class="admonition-title">Outputs from a small run</p>'
    "<p>The outputs on this page were produced when this site was built, by running the notebook "
    "with <code>REPGRAD_SMALL=1</code>: the settings the test suite uses, with fewer steps, samples "
    "and replicates, so curves are short and estimates noisy. Figures quoted in the text are from "
    "full runs; run the notebook without <code>REPGRAD_SMALL</code> to reproduce them.</p></div>"
)
# Pieces of nbconvert's page template that would fetch from a CDN: MathJax 2 (the site bundles
# MathJax 3, docs/_hooks/mathjax.py) and mermaid (no notebook draws a mermaid diagram).
_CDN_SCRIPTS = (
    re.compile(r'<script src="[^"]*">\s*</script>\s*<!-- MathJax configuration -->.*?<!-- End of mathjax configuration -->', re.S),
    re.compile(r'<script type="module">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*</script>', re.S),
)


def _fingerprint(notebook: Path, root: Path) -> str:
    h = hashlib.sha256(SETUP.encode())
    sources = [notebook, *sorted(notebook.parent.glob("*.py")), *sorted((root / "repgrad").rglob("*.py"))]
    for path in sources:
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _execute(source: Path, target: Path, root: Path) -> float:
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP))
    env = dict(os.environ, REPGRAD_SMALL="1", PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    client = NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
    )
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        raise PluginError(f"{source.name} raised while the site ran it (REPGRAD_SMALL=1):\n{e}") from None
    del nb.cells[0]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.execution_count = i + 1 - sum(c.cell_type != "code" for c in nb.cells[:i])
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = cell.execution_count
    nb.metadata["repgrad_docs"] = {"executed_with": "REPGRAD_SMALL=1"}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(target)
    return time.perf_counter() - start


def on_files(files, config):
    root = Path(config["config_file_path"]).parent
    cache = root / "build" / "docs" / "notebooks"
    todo, executed = [], {}
    for file in files:
        if file.src_uri.startswith("notebooks/") and file.src_uri.endswith(".ipynb"):
            source = Path(file.abs_src_path)
            # (the file keeps its name: mkdocs-jupyter copies it next to the page for download)
            target = cache / f"{source.stem}-{_fingerprint(source, root)}" / source.name
            executed[file.src_uri] = (file, target)
            if not target.exists():
                todo.append((source, target))
    if todo:
        jobs = int(os.environ.get("REPGRAD_DOCS_JOBS", "2"))
        log.info("Running %d notebooks with REPGRAD_SMALL=1, %d at a time", len(todo), jobs)
        start = time.perf_counter()
        with ThreadPoolExecutor(jobs) as pool:
            runs = [(s, pool.submit(_execute, s, t, root)) for s, t in todo]
            for source, run in runs:
                log.info("Ran %s in %.0f s", source.name, run.result())
        log.info("Ran the notebooks in %.0f s", time.perf_counter() - start)
    for file, target in executed.values():
        for stale in cache.glob(f"{target.stem}-*"):
            if stale != target.parent and stale.name.rsplit("-", 1)[0] == target.stem:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        file.abs_src_path = str(target)  # what mkdocs-jupyter renders (and copies for download)
    return files


def on_page_content(html, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    for pattern in _CDN_SCRIPTS:
        html = pattern.sub("", html)
    head, h1, rest = html.partition("</h1>")
    return f"{head}{h1}{NOTE}{rest}" if h1 else NOTE + html
