"""The one place where pipeline records become LlamaIndex nodes and nodes become hits.

Metadata keys on every node (and on every Chroma record), all scalar because
Chroma accepts only str/int/float/bool:

========== ===========================================================
key        value
========== ===========================================================
doc        document file name (citation key)
page       1-based physical page (int)
section    section title, "" when unknown
kind       "text" or "figure"
figure     figure label ("Figure 2.3"), "" for text and uncaptioned figures
caption    printed caption, "" when none
image_path PNG path of a figure, "" for text
bbox       JSON list [x0, y0, x1, y1] in PDF points, "" when unknown
figure_kind "raster" | "vector" | "mixed" for figures, "" for text
generated_caption caption written by a captioning model, "" when none
========== ===========================================================
"""

from __future__ import annotations

import json
from typing import Any

from llama_index.core.schema import BaseNode, ImageNode, MetadataMode, NodeWithScore, TextNode

from .records import BBox, Figure, Hit, TextChunk

_HIDDEN_FROM_LLM = ["bbox", "image_path", "figure_kind", "kind"]
_HIDDEN_FROM_EMBEDDING = [
    "doc",
    "page",
    "section",
    "kind",
    "figure",
    "caption",
    "image_path",
    "bbox",
    "figure_kind",
    "generated_caption",
]


def _bbox_json(bbox: BBox | None) -> str:
    return "" if bbox is None else json.dumps([round(v, 2) for v in bbox])


def chunk_metadata(chunk: TextChunk) -> dict[str, Any]:
    """Chroma/LlamaIndex metadata of a text chunk."""
    return {
        "doc": chunk.doc,
        "page": chunk.page,
        "section": chunk.section or "",
        "kind": "text",
        "figure": "",
        "caption": "",
        "image_path": "",
        "bbox": _bbox_json(chunk.bbox),
        "figure_kind": "",
        "generated_caption": "",
    }


def figure_metadata(figure: Figure, image_path: str) -> dict[str, Any]:
    """Chroma/LlamaIndex metadata of a figure whose PNG was saved at ``image_path``."""
    return {
        "doc": figure.doc,
        "page": figure.page,
        "section": figure.section or "",
        "kind": "figure",
        "figure": figure.label or "",
        "caption": figure.caption or "",
        "image_path": image_path,
        "bbox": _bbox_json(figure.bbox),
        "figure_kind": figure.kind,
        "generated_caption": figure.generated_caption or "",
    }


def chunk_to_node(chunk: TextChunk) -> TextNode:
    """A text chunk as a LlamaIndex ``TextNode`` (id = ``chunk.chunk_id``)."""
    return TextNode(
        id_=chunk.chunk_id,
        text=chunk.text,
        metadata=chunk_metadata(chunk),
        excluded_llm_metadata_keys=list(_HIDDEN_FROM_LLM),
        excluded_embed_metadata_keys=list(_HIDDEN_FROM_EMBEDDING),
    )


def figure_to_node(figure: Figure, image_path: str) -> ImageNode:
    """A figure as a LlamaIndex ``ImageNode``: its text plus the path of its PNG."""
    return ImageNode(
        id_=figure.figure_id,
        text=figure.text,
        image_path=image_path,
        image_mimetype="image/png",
        metadata=figure_metadata(figure, image_path),
        excluded_llm_metadata_keys=list(_HIDDEN_FROM_LLM),
        excluded_embed_metadata_keys=list(_HIDDEN_FROM_EMBEDDING),
    )


def record_to_node(node_id: str, text: str, metadata: dict[str, Any]) -> BaseNode:
    """Rebuild a node from what the store holds (id, document text, metadata)."""
    meta = dict(metadata)
    if meta.get("kind") == "figure":
        return ImageNode(
            id_=node_id,
            text=text,
            image_path=str(meta.get("image_path") or "") or None,
            image_mimetype="image/png",
            metadata=meta,
            excluded_llm_metadata_keys=list(_HIDDEN_FROM_LLM),
            excluded_embed_metadata_keys=list(_HIDDEN_FROM_EMBEDDING),
        )
    return TextNode(
        id_=node_id,
        text=text,
        metadata=meta,
        excluded_llm_metadata_keys=list(_HIDDEN_FROM_LLM),
        excluded_embed_metadata_keys=list(_HIDDEN_FROM_EMBEDDING),
    )


def node_to_hit(node: NodeWithScore, rank: int) -> Hit:
    """A retrieved node as a :class:`Hit` (the CLI's JSON shape).

    Nodes from other retrievers may lack our metadata; missing keys become
    ``None``/``0`` rather than errors so any LlamaIndex retriever can be evaluated.
    """
    meta = node.node.metadata
    is_figure = meta.get("kind") == "figure" or isinstance(node.node, ImageNode)
    image = meta.get("image_path") or getattr(node.node, "image_path", None) or None
    return Hit(
        rank=rank,
        kind="figure" if is_figure else "text",
        doc=str(meta.get("doc", "")),
        page=int(meta.get("page", 0) or 0),
        figure=(meta.get("figure") or None) if is_figure else None,
        caption=(meta.get("caption") or None) if is_figure else None,
        text=node.node.get_content(metadata_mode=MetadataMode.NONE),
        image=image if is_figure else None,
        score=float(node.score if node.score is not None else 0.0),
        node_id=node.node.node_id,
        section=meta.get("section") or None,
        generated_caption=(meta.get("generated_caption") or None) if is_figure else None,
    )


def nodes_to_hits(nodes: list[NodeWithScore]) -> list[Hit]:
    """Retrieved nodes, best first, as ranked hits (rank 1 first)."""
    return [node_to_hit(n, rank) for rank, n in enumerate(nodes, start=1)]
