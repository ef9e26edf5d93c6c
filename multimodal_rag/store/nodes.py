"""Nodes as store records: the one place that maps LlamaIndex nodes to (id, text, metadata)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode


def version_of(node: BaseNode) -> str:
    """The document version a node belongs to (the tail of its ``ref_doc_id``)."""
    return (node.ref_doc_id or "").rpartition("@")[2]


def node_record(node: BaseNode) -> tuple[str, str, dict[str, Any]]:
    """``(id, text, metadata)`` for a vector backend that keeps flat metadata.

    The metadata holds our keys, the document version (``ver``) and LlamaIndex's
    own (``_node_content``, ``_node_type``, ``ref_doc_id``), so a stock LlamaIndex
    vector store over the same collection rebuilds the node.
    """
    from llama_index.core.schema import MetadataMode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
    meta["ver"] = version_of(node)
    return node.node_id, node.get_content(metadata_mode=MetadataMode.NONE), meta


_LLAMA_KEYS = frozenset(
    {"_node_content", "_node_type", "document_id", "doc_id", "ref_doc_id", "ver"}
)


def clean_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Our metadata of a stored record, without LlamaIndex's bookkeeping keys."""
    return {k: v for k, v in meta.items() if k not in _LLAMA_KEYS}
