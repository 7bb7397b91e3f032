"""The documentation site as built by `make docs` (site/): every notebook page shows its outputs,
math is typeset, and nothing is loaded from the network.

`make docs` runs this file right after `mkdocs build --strict`, with REPGRAD_SITE_CHECK=1: then
every check runs, the headless-browser one included (Debian's chromium, which .ci/run installs):
every page is opened from a server on localhost, in a browser that cannot resolve other hosts.
Elsewhere (`make test`) the file skips, since site/ may be missing or older than the sources.
"""

from __future__ import annotations

import functools
import html
import http.server
import os
import pathlib
import re
import shutil
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))

if not os.environ.get("REPGRAD_SITE_CHECK"):
    pytest.skip("checks the built site: run by `make docs` (REPGRAD_SITE_CHECK=1)", allow_module_level=True)

# A code cell that draws a figure.
DRAWS = re.compile(r"\bplt\.(?:subplots|figure|subplot)\(|^\s*figure\(", re.M)
# A code cell that prints, unconditionally.
PRINTS = re.compile(r"^print\(", re.M)
# How a page could reach the network as it loads: a script, stylesheet, font, image or frame
# source, a preconnect, an import() or a CSS url() that names another host.
EXTERNAL = re.compile(
    r"""<(?:script|img|iframe|source|video|audio|embed)\b[^>]*\bsrc=["']?(?:https?:)?//"""
    r"""|<link\b[^>]*\bhref=["']?(?:https?:)?//"""
    r"""|\bimport\(\s*["'](?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//""",
    re.I,
)


def _page(path: str) -> str:
    return (SITE / path / "index.html").read_text(encoding="utf-8")


def _code_cells(page: str) -> list[tuple[str, str]]:
    """(source, outputs HTML) of each code cell of a rendered notebook page."""
    cells = []
    for chunk in page.split('<div class="jp-Cell ')[1:]:  # from one cell's start to the next's
        code = re.search(r'<div class="highlight-ipynb[^"]*"><pre>(.*?)</pre>(.*)', chunk, re.S)
        if code:
            cells.append((html.unescape(re.sub(r"<[^>]+>", "", code.group(1))), code.group(2)))
    return cells


def test_site_is_built():
    assert (SITE / "index.html").exists(), "site/ is missing: `make docs` builds it, then runs this file"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_page_shows_its_outputs(notebook):
    page = _page(f"notebooks/{notebook}")
    cells = _code_cells(page)
    assert cells, f"notebooks/{notebook}: no code cell on the page"
    blank = [source.strip().splitlines()[0] for source, outputs in cells if DRAWS.search(source) and "<img" not in outputs]
    assert not blank, f"notebooks/{notebook}: cells that draw a figure show no image: {blank}"
    assert re.search(r'<img[^>]+src="data:image/png;base64,', page), f"notebooks/{notebook}: no figure on the page"
    printed = [source.strip().splitlines()[0] for source, outputs in cells if PRINTS.search(source) and "<pre>" not in outputs]
    assert not printed, f"notebooks/{notebook}: cells that print show no output: {printed}"
    assert "jp-OutputArea-output" in page and "Traceback" not in page, f"notebooks/{notebook}: an error on the page"
    assert re.search("Outputs from a (small|full) run", page), f"notebooks/{notebook}: the note on its settings is missing"


def test_no_page_loads_from_the_network():
    found = {}
    for path in SITE.rglob("*"):
        if path.suffix in (".html", ".css", ".js") and "mathjax" not in path.parts:
            hits = sorted({m.group(0)[:80] for m in EXTERNAL.finditer(path.read_text(encoding="utf-8", errors="replace"))})
            if hits:
                found[str(path.relative_to(SITE))] = hits
    assert not found, f"pages that would load from other hosts (the site must work offline): {found}"


def test_api_pages_render_the_docstrings():
    # docs/_hooks/griffe_rst.py: "|_{z fixed}" in rg.elbo's docstring once rendered as "|<em z_n>{z fixed}".
    page = _page("api/objectives")
    assert "log q_φ(z)|_{z fixed}, whose" in page and "]|_{z_n} ∂z_n/∂φ" in page
    leftovers = re.compile(r"<em [^>]*>|``|:(?:math|func|class|meth|attr):`|^\s*\.\. \w+::", re.M)
    broken = {
        str(p.relative_to(SITE)): sorted(set(leftovers.findall(p.read_text(encoding="utf-8"))))
        for p in (SITE / "api").rglob("index.html")
    }
    broken = {page: found for page, found in broken.items() if found}
    assert not broken, f"Markdown read as emphasis, or reStructuredText left unconverted: {broken}"


def test_rst_to_markdown():
    sys.path.insert(0, str(ROOT / "docs" / "_hooks"))
    try:
        from griffe_rst import rst_to_markdown
    finally:
        sys.path.pop(0)
    text = (
        "drops ∇φ log q(z)|_{z fixed}, and b̃_k, keeps snake_case, :math:`x_{n}` and ``a_b_``.\n\n"
        "Loop::\n\n  for t in range(2):\n      step_(t)\n\nAfter.\n"
    )
    out = rst_to_markdown(text)
    assert r"q(z)|\_{z fixed}, and b̃\_k, keeps snake_case, \(x_{n}\) and ``a_b_``." in out
    assert "Loop:\n\n```python\nfor t in range(2):\n    step_(t)\n```\n\nAfter." in out
    # A Returns section is prose: griffe must find no colon to split into a type and a description.
    returns = rst_to_markdown('Returns:\n  ``{"a": 1}``: a dict, ``f(x)``.\n  More: here.\n')
    assert returns == 'Returns:\n  <code>{"a"&#58; 1}</code>&#58; a dict, ``f(x)``.\n  More: here.\n'


# --- the headless browser --------------------------------------------------------------------

# Waits (up to 30 s) until MathJax has typeset every math container, then describes the page.
MATH_STATE = r"""
(async () => {
  const containers = () => [...document.querySelectorAll(".arithmatex, .jp-MarkdownOutput")];
  const raw = () => containers().flatMap((c) => {
    const walker = document.createTreeWalker(c, NodeFilter.SHOW_TEXT, {
      acceptNode: (n) => n.parentElement.closest("mjx-container, code, pre")
        ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
    });
    const found = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (/\$|\\\(|\\\[/.test(n.data)) found.push(n.data.trim().slice(0, 80));
    }
    return found;
  });
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
    if (raw().length === 0 && window.MathJax && MathJax.version) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    mathjax: window.MathJax ? MathJax.version || null : null,
    typeset: document.querySelectorAll("mjx-container").length,
    errors: document.querySelectorAll("mjx-merror, [data-mjx-error]").length,
    raw: raw().slice(0, 5),
    images: [...document.images].filter((i) => i.complete && i.naturalWidth > 0).length,
  };
})()
"""
# Every page of the site (about a second each); on these, formulas must have been typeset.
PAGES = sorted(str(p.parent.relative_to(SITE)).removeprefix(".") for p in SITE.rglob("index.html"))
HAS_MATH = {"api/objectives", "notebooks/vae"}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("Debian's chromium is needed (apt-get install -y chromium); .ci/run installs it")
    from _chromium import Chromium  # tests/_chromium.py

    tmp = tmp_path_factory.mktemp("chromium")
    chrome = Chromium(executable, str(tmp / "profile"), str(tmp / "chromium.log"))
    yield chrome
    chrome.close()


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(Quiet, directory=str(SITE))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield f"http://localhost:{httpd.server_address[1]}/"
        httpd.shutdown()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_the_browser_sees_every_kind_of_page():
    assert {"", "api/objectives", "notebooks/vae"} <= set(PAGES), PAGES


@pytest.mark.parametrize("path", PAGES)
def test_page_in_headless_chromium(browser, server, path):
    report = browser.load(server + path + ("/" if path else ""), MATH_STATE)
    state = report["value"]
    assert not report["errors"], f"/{path}: console errors: {report['errors']}"
    assert not report["failed"], f"/{path}: failed loads: {report['failed']}"
    offsite = [u for u in report["requests"] if not re.match(r"(https?://localhost:\d+/|data:|blob:|about:)", u)]
    assert not offsite, f"/{path}: requests beyond localhost: {offsite}"
    assert state["mathjax"], f"/{path}: MathJax did not load: {state}"
    assert not state["raw"], f"/{path}: math left untypeset: {state['raw']}"
    assert state["errors"] == 0, f"/{path}: MathJax could not typeset {state['errors']} formulas"
    if path in HAS_MATH:
        assert state["typeset"] > 0, f"/{path}: no formula typeset: {state}"
    if path.startswith("notebooks/"):
        assert state["images"] > 0, f"/{path}: no figure displayed: {state}"
