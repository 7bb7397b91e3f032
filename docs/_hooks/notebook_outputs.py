"""mkdocs hook: the notebook pages show the outputs of a run made when the site is built.

The notebooks in notebooks/ are kept without outputs. Each is run here in a fresh kernel, with
``REPGRAD_SMALL=1`` (the seconds-long settings that the test suite also runs) and the repgrad of
this source tree, and mkdocs-jupyter renders the executed copy, so every figure, table and printed
number on the site comes from the code and the library it documents. A cell that raises fails the
build. The kernel shows every matplotlib figure still open after a cell as a PNG under that cell,
as Jupyter's inline backend does: most notebooks select the non-interactive Agg backend, under
which Jupyter itself would show no figure. Each page says which settings made its outputs.

Executed copies are kept in build/docs/notebooks/ under a hash of the notebook, its helper
modules and repgrad's sources, so a rebuild with nothing changed runs nothing.
``REPGRAD_DOCS_JOBS`` sets how many notebooks run at once (default: 2). ``REPGRAD_DOCS_FULL=1``
runs them at their full settings instead, for a site that shows the full results (tens of
minutes to hours on a laptop's CPU; CI builds the small one).
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

TIMEOUT_S = {True: 900, False: 4 * 3600}  # per cell, small or full settings
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
NOTE = {
    True: '<div class="admonition info"><p class="admonition-title">Outputs from a small run</p>'
    "<p>The outputs on this page were produced when this site was built, by running the notebook "
    "with <code>REPGRAD_SMALL=1</code>: the settings the test suite uses, with fewer steps, samples "
    "and replicates, so curves are short and estimates noisy. Figures quoted in the text are from "
    "full runs; run the notebook without <code>REPGRAD_SMALL</code> to reproduce them.</p></div>",
    False: '<div class="admonition info"><p class="admonition-title">Outputs from a full run</p>'
    "<p>The outputs on this page were produced when this site was built, by running the notebook "
    "at its full settings.</p></div>",
}
_small_run: dict[str, bool] = {}  # page (src_uri) -> whether its outputs come from the small settings
# Pieces of nbconvert's page template that would fetch from a CDN: MathJax 2 (the site bundles
# MathJax 3, docs/_hooks/mathjax.py) and mermaid (no notebook draws a mermaid diagram).
_CDN_SCRIPTS = (
    re.compile(r'<script src="[^"]*">\s*</script>\s*<!-- MathJax configuration -->.*?<!-- End of mathjax configuration -->', re.S),
    re.compile(r'<script type="module">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*</script>', re.S),
)


def _fingerprint(notebook: Path, root: Path, small: bool) -> str:
    h = hashlib.sha256(SETUP.encode() + (b"small" if small else b"full"))
    sources = [notebook, *sorted(notebook.parent.glob("*.py")), *sorted((root / "repgrad").rglob("*.py"))]
    for path in sources:
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _execute(source: Path, target: Path, root: Path, small: bool) -> float:
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    env.pop("REPGRAD_SMALL", None)
    env.update({"REPGRAD_SMALL": "1"} if small else {})
    start = time.perf_counter()
    client = NotebookClient(
        nb, timeout=TIMEOUT_S[small], kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
    )
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        settings = "REPGRAD_SMALL=1" if small else "full settings"
        raise PluginError(f"{source.name} raised while the site ran it ({settings}):\n{e}") from None
    del nb.cells[0]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.execution_count = i + 1 - sum(c.cell_type != "code" for c in nb.cells[:i])
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = cell.execution_count
    nb.metadata["repgrad_docs"] = {"settings": "small (REPGRAD_SMALL=1)" if small else "full"}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(target)
    return time.perf_counter() - start


def on_files(files, config):
    root = Path(config["config_file_path"]).parent
    cache = root / "build" / "docs" / "notebooks"
    small = os.environ.get("REPGRAD_DOCS_FULL") != "1"
    todo, executed = [], {}
    for file in files:
        if file.src_uri.startswith("notebooks/") and file.src_uri.endswith(".ipynb"):
            source = Path(file.abs_src_path)
            # (the file keeps its name: mkdocs-jupyter copies it next to the page for download)
            target = cache / f"{source.stem}-{_fingerprint(source, root, small)}" / source.name
            executed[file.src_uri] = (file, target)
            _small_run[file.src_uri] = small
            if not target.exists():
                todo.append((source, target))
    if todo:
        jobs = int(os.environ.get("REPGRAD_DOCS_JOBS", "2"))
        settings = "REPGRAD_SMALL=1" if small else "their full settings"
        log.info("Running %d notebooks with %s, %d at a time", len(todo), settings, jobs)
        start = time.perf_counter()
        with ThreadPoolExecutor(jobs) as pool:
            runs = [(s, pool.submit(_execute, s, t, root, small)) for s, t in todo]
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
    note = NOTE[_small_run[page.file.src_uri]]
    head, h1, rest = html.partition("</h1>")
    return f"{head}{h1}{note}{rest}" if h1 else note + html
