"""mkdocs hook: every notebook in notebooks/ (docs/notebooks links there) gets a nav entry.

mkdocs.yml lists the notebooks with curated titles; one added to notebooks/ without a nav entry
is appended to the "Notebooks" section under the title of its first heading, so that a new
notebook never goes unlisted."""

from __future__ import annotations

from pathlib import Path


def _listed(nav) -> set[str]:
    found: set[str] = set()
    for item in nav if isinstance(nav, list) else [nav]:
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, dict):
            for value in item.values():
                found |= _listed(value)
    return found


def on_config(config):
    nav = config["nav"]
    section = next(item["Notebooks"] for item in nav if isinstance(item, dict) and "Notebooks" in item)
    listed = _listed(nav)
    for notebook in sorted((Path(config["docs_dir"]) / "notebooks").glob("*.ipynb")):
        uri = f"notebooks/{notebook.name}"
        if uri not in listed:
            section.append(uri)
    return config
