"""Griffe extension for the API reference: read the package's docstrings as markdown.

The docstrings are Google style with two habits from Sphinx that griffe does
not know: ``Example:`` section headers (griffe knows only ``Examples:``; left
alone, the ``>>>`` lines would render as markdown quotes and stray links) and
roles such as ``:func:`name```. Both are rewritten before griffe parses the
docstring; the source files are not touched.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
# ":func:`~multimodal_rag.x.y`" -> "`y`"; ":class:`Hit`" -> "`Hit`".
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class ExampleSections(Extension):
    """Rewrite ``Example:`` headers and Sphinx roles before griffe parses a docstring."""

    def on_instance(self, *, node: Any, obj: Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(_role, text)
