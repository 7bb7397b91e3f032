"""Griffe extension for the API pages: repgrad's docstrings use a few reStructuredText constructs
(``:func:`x```-style roles, ``:math:``, ``.. math::`` and ``::`` literal blocks) inside
Google-style sections, and title their doctests ``Example:``; this rewrites them as the Markdown
that mkdocstrings renders (code spans, arithmatex math, fenced code) and as the ``Examples:``
section whose ``>>>`` lines it renders as code.

The prose also writes subscripts the way the math does (``∇φ log q(z)|_{z fixed}``, ``b̃_k``).
Markdown reads an underscore that is not inside a word as emphasis, and ``attr_list`` then takes
the ``{...}`` after it for HTML attributes: the page showed ``|<em z_n>{z fixed}``. Such
underscores are escaped outside code and math, so they stay underscores. And the Returns
sections are prose, whose first line must not be cut at a colon into a type and a description.
"""

from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc):`~?([^`]+)`")
_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_EXAMPLE = re.compile(r"^([ \t]*)Example:[ \t]*$", re.M)
_MATH_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?P<body>(?:(?P=indent)[ \t]+.*\n|[ \t]*\n)+)", re.M)
# "text::", a blank line, then a block indented deeper than the paragraph: an rST literal block.
_LITERAL_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)(?P<text>.*?)::[ \t]*\n[ \t]*\n(?P<body>(?:(?P=indent)[ \t]+.*\n|[ \t]*\n)+)", re.M
)
# What Markdown must leave alone: fenced code, display and inline math, code spans, doctest lines.
_PROTECTED = re.compile(
    r"^[ \t]*```.*?^[ \t]*```[ \t]*$"  # fenced code
    r"|\$\$.*?\$\$"  # display math
    r"|\\\(.*?\\\)|\\\[.*?\\\]"  # inline and display math, arithmatex's generic delimiters
    r"|(?P<ticks>`+).+?(?P=ticks)"  # code spans, ``x`` and `x`
    r"|^[ \t]*(?:>>>|\.\.\.)[ \t].*$",  # doctest lines
    re.S | re.M,
)
# An underscore not between two letters or digits could open or close Markdown emphasis.
_LONE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
# The first line of a Returns or Yields section, and its code spans.
_RETURNS_FIRST_LINE = re.compile(r"^([ \t]*(?:Returns|Yields):[ \t]*\n)([ \t]+\S.*)$", re.M)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def _math_block(m: re.Match) -> str:
    indent = m.group("indent")
    lines = [line.strip() for line in m.group("body").splitlines() if line.strip()]
    return f"{indent}$$\n" + "".join(f"{indent}{line}\n" for line in lines) + f"{indent}$$\n\n"


def _literal_block(m: re.Match) -> str:
    # rST: "text::" shows "text:", "text ::" shows "text" and a lone "::" shows nothing.
    indent, text = m.group("indent"), m.group("text")
    lead = "" if not text.strip() else f"{indent}{text.rstrip()}{'' if text.endswith(' ') else ':'}\n\n"
    lines = m.group("body").rstrip().splitlines()
    depth = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    body = "".join(f"{indent}{line[depth:]}\n" if line.strip() else "\n" for line in lines)
    return f"{lead}{indent}```python\n{body}{indent}```\n\n"


def _returns_first_line(m: re.Match) -> str:
    # repgrad's Returns sections are prose (returns_named_value: false), but griffe takes what
    # precedes the first colon of their first line for the returned type: "``loss(params, key)``:
    # a scalar" showed "``loss(params, key)``" as a type, and ``{"loc": V_μ}`` was cut in two.
    # The colons of that line are written as the HTML entity, which griffe does not split on.
    out, last = [], 0
    line = m.group(2)
    for span in _CODE_SPAN.finditer(line):
        out.append(line[last : span.start()].replace(":", "&#58;"))
        code = span.group(2).strip()
        out.append(f"<code>{html.escape(code, quote=False).replace(':', '&#58;')}</code>" if ":" in code else span.group(0))
        last = span.end()
    out.append(line[last:].replace(":", "&#58;"))
    return m.group(1) + "".join(out)


def _escape_underscores(text: str) -> str:
    out, last = [], 0
    for m in _PROTECTED.finditer(text):
        out += [_LONE_UNDERSCORE.sub(r"\\_", text[last : m.start()]), m.group(0)]
        last = m.end()
    out.append(_LONE_UNDERSCORE.sub(r"\\_", text[last:]))
    return "".join(out)


def rst_to_markdown(text: str) -> str:
    text = _MATH_BLOCK.sub(_math_block, text if text.endswith("\n") else text + "\n")
    text = _LITERAL_BLOCK.sub(_literal_block, text)
    text = _INLINE_MATH.sub(lambda m: f"\\({m.group(1)}\\)", text)
    text = _EXAMPLE.sub(lambda m: f"{m.group(1)}Examples:", text)
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    text = _RETURNS_FIRST_LINE.sub(_returns_first_line, text)
    return _escape_underscores(text)


class RstToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
