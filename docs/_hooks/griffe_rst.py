"""Griffe extension for the API pages: repgrad's docstrings use a few reStructuredText constructs
(``:func:`x```-style roles, ``:math:`` and ``.. math::``) inside Google-style sections, and
title their doctests ``Example:``; this rewrites them as the Markdown that mkdocstrings renders
(code spans, arithmatex math) and as the ``Examples:`` section whose ``>>>`` lines it renders as
code."""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):`~?([^`]+)`")
_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_EXAMPLE = re.compile(r"^([ \t]*)Example:[ \t]*$", re.M)
_MATH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?P<body>(?:(?P=indent)[ \t]+.*\n|[ \t]*\n)+)", re.M)


def _math_block(m: re.Match) -> str:
    indent = m.group("indent")
    lines = [line.strip() for line in m.group("body").splitlines() if line.strip()]
    return f"{indent}$$\n" + "".join(f"{indent}{line}\n" for line in lines) + f"{indent}$$\n\n"


def rst_to_markdown(text: str) -> str:
    text = _MATH_BLOCK.sub(_math_block, text if text.endswith("\n") else text + "\n")
    text = _INLINE_MATH.sub(lambda m: f"\\({m.group(1)}\\)", text)
    text = _EXAMPLE.sub(lambda m: f"{m.group(1)}Examples:", text)
    return _ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class RstToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
