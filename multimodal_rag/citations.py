"""Numbered sources, citation markers and the extractive (no-LLM) answer.

The query engine numbers the passages and figures it hands to the LLM ``[1]``,
``[2]``, … in ranking order; source ``n`` is ``response.source_nodes[n - 1]``.
This module owns that numbering: the header each source gets in the prompt,
the structured :class:`Citation` records put in ``response.metadata``, reading
``[n]`` markers back out of an answer, and the "Sources:" lines an application
prints under it. The answer without an LLM is :mod:`multimodal_rag.extractive`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.schema import NodeWithScore

from .nodes import nodes_to_hits
from .records import Hit, HitKind

__all__ = [
    "Citation",
    "cited_numbers",
    "citations_for",
    "citations_from_response",
    "format_sources",
    "source_header",
]

# "[1]", "[1, 2]", "[1][2]" (the last is two matches); the digits are validated later.
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")


@dataclass(frozen=True)
class Citation:
    """One numbered source of an answer.

    Attributes:
        n: The number used in the answer's ``[n]`` markers (1-based).
        doc: The document's file name.
        page: 1-based physical page.
        figure: The figure's label (``"Figure 2.3"``), ``None`` for passages and
            unlabelled figures.
        image: Path of the figure's PNG, ``None`` for passages.
        kind: ``"text"`` or ``"figure"``.
    """

    n: int
    doc: str
    page: int
    figure: str | None
    image: str | None
    kind: HitKind = "text"

    def to_json(self) -> dict[str, Any]:
        """The citation as a JSON-ready dict (``n, doc, page, figure, image, kind``)."""
        return {
            "n": self.n,
            "doc": self.doc,
            "page": self.page,
            "figure": self.figure,
            "image": self.image,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Citation:
        """Rebuild a citation from :meth:`to_json` output."""
        kind: HitKind = "figure" if data.get("kind") == "figure" else "text"
        return cls(
            n=int(data["n"]),
            doc=str(data.get("doc", "")),
            page=int(data.get("page", 0) or 0),
            figure=data.get("figure") or None,
            image=data.get("image") or None,
            kind=kind,
        )

    def short(self) -> str:
        """``"en-eyes.pdf p. 41 (Figure 2.3)"``: how a source line names the citation."""
        where = _where(self.doc, self.page, sep="p. ")
        if self.kind == "figure":
            return f"{where} ({self.figure or 'figure'})"
        return where


def _where(doc: str, page: int, sep: str) -> str:
    # Nodes from other retrievers may lack our doc/page metadata (node_to_hit gives "" and 0).
    doc = doc or "unknown document"
    return f"{doc} {sep}{page}" if page > 0 else doc


def _hit_to_citation(hit: Hit) -> Citation:
    return Citation(
        n=hit.rank, doc=hit.doc, page=hit.page, figure=hit.figure, image=hit.image, kind=hit.kind
    )


def citations_for(nodes: Sequence[NodeWithScore]) -> list[Citation]:
    """Number retrieved nodes 1..k in their order and describe each as a :class:`Citation`."""
    return [_hit_to_citation(h) for h in nodes_to_hits(list(nodes))]


def source_header(hit: Hit) -> str:
    """The line that introduces a source in the prompt and in the extractive answer.

    Example:
        >>> from multimodal_rag.records import Hit
        >>> hit = Hit(rank=1, kind="figure", doc="en-eyes.pdf", page=41, figure="Figure 2.3",
        ...           caption="The retina", text="", image=None, score=1.0)
        >>> source_header(hit)
        '[1] en-eyes.pdf p.41 — Figure 2.3: The retina'
    """
    head = f"[{hit.rank}] {_where(hit.doc, hit.page, sep='p.')}"
    if hit.kind == "figure":
        label = hit.figure or "Unlabelled figure"
        if hit.caption:
            return f"{head} — {label}: {hit.caption}"
        if hit.generated_caption:
            # Marked, so no reader takes a model's guess for the manual's own words.
            return f"{head} — {label} (generated caption: {hit.generated_caption})"
        return f"{head} — {label}"
    return f"{head} — section: {hit.section}" if hit.section else head


def source_body(hit: Hit) -> str:
    """The source's text without the label and caption already given in its header."""
    text = hit.text.strip()
    if hit.kind == "figure":
        # A figure's text starts with "label caption" (records.Figure.text); the header has it.
        lead = " ".join(p for p in (hit.figure, hit.caption) if p)
        if lead and text.startswith(lead):
            text = text[len(lead) :].strip()
        if not hit.caption and hit.generated_caption and text.startswith(hit.generated_caption):
            text = text[len(hit.generated_caption) :].strip()
    return text


def cited_numbers(answer: str, count: int) -> list[int]:
    """The source numbers an answer cites, in order of first use, ignoring out-of-range ones.

    Args:
        answer: Text with ``[n]`` / ``[n, m]`` markers.
        count: How many sources were numbered.

    Example:
        >>> cited_numbers("Red [2], then blue [1, 2] and [7].", 3)
        [2, 1]
    """
    seen: list[int] = []
    for match in _MARKER.finditer(answer):
        for part in re.split(r"[,;]", match.group(1)):
            n = int(part)
            if 1 <= n <= count and n not in seen:
                seen.append(n)
    return seen


def format_sources(citations: Iterable[Citation], answer: str | None = None) -> str:
    """Render ``Sources:`` lines to print under an answer.

    Args:
        citations: The response's citations.
        answer: When given, list only the sources the answer cites (all of them
            if it cites none, so the reader still sees where the answer came from).

    Returns:
        ``"Sources:\\n[1] en-eyes.pdf p. 41 (Figure 2.3)\\n..."``, or ``""`` without citations.

    Example:
        >>> print(format_sources([Citation(1, "en-eyes.pdf", 41, "Figure 2.3", None, "figure"),
        ...                       Citation(2, "en-eyes.pdf", 40, None, None)], "See [1]."))
        Sources:
        [1] en-eyes.pdf p. 41 (Figure 2.3)
    """
    items = list(citations)
    if answer is not None:
        used = set(cited_numbers(answer, max((c.n for c in items), default=0)))
        items = [c for c in items if c.n in used] or items
    if not items:
        return ""
    return "\n".join(["Sources:", *(f"[{c.n}] {c.short()}" for c in items)])


def citations_from_response(response: Any) -> list[Citation]:
    """The structured citations of an engine's response.

    Works on the query engine's ``Response``/``StreamingResponse`` and on the chat
    engine's ``AgentChatResponse``/``StreamingAgentChatResponse`` (whose query
    response travels in ``sources[0].raw_output``).
    """
    metadata = getattr(response, "metadata", None)
    if not metadata:
        for source in getattr(response, "sources", None) or []:
            metadata = getattr(source.raw_output, "metadata", None)
            if metadata:
                break
    raw = (metadata or {}).get("citations", [])
    return [Citation.from_json(c) for c in raw]
