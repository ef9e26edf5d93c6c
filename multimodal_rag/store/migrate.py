"""Migration of Chroma stores written by schema 1 (before the catalog and versioned ids).

Schema 1 kept a manifest record and one entry per document in ``NAME_meta``,
unversioned record ids, figure texts only in ``NAME_text``, and (embedded) a
whole search state per generation under ``search/``. Opening such a store
with a writable client rewrites it once, under the writer lock, document by
document: records are re-keyed to ``<id>@<version>`` with LlamaIndex node
content, figure texts are copied into the figure space, each document gets
its search segment, and the catalog is written last. A migration killed half
way leaves the old manifest in place, so the next open starts again; records
already re-keyed are simply written again.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StoreError
from .base import (
    SCHEMA_VERSION,
    Catalog,
    DocumentEntry,
    Manifest,
    Space,
    new_version,
    record_id,
    ref_doc_id,
)

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

    from .chroma import ChromaStore

logger = logging.getLogger(__name__)

_LEGACY_KEY = "__store__"


def _legacy_meta(store: ChromaStore) -> Collection | None:
    from chromadb.errors import NotFoundError

    try:
        meta = store.client.get_collection(f"{store.name}_meta", embedding_function=None)
    except (NotFoundError, ValueError):
        return None
    got = meta.get(ids=[_LEGACY_KEY], include=["documents"])
    return meta if got["ids"] else None


def migrate_if_needed(store: ChromaStore) -> bool:
    """Migrate a schema-1 store in place; returns whether it did.

    Raises:
        StoreError: The store is of schema 1 and cannot be written.
    """
    if store.catalog() is not None:
        return False
    with store._guard():
        legacy = _legacy_meta(store)
    if legacy is None:
        return False
    logger.warning("%s: migrating the store from schema 1 to %d", store.location, SCHEMA_VERSION)
    try:
        with store.writer():
            if store.catalog() is None:  # another process may have finished it meanwhile
                with store._guard():
                    _migrate(store, legacy)
    except StoreError as e:
        raise StoreError(
            f"is of schema 1 and must be migrated once by a writable open ({e})",
            location=store.location,
        ) from e
    return True


def _migrate(store: ChromaStore, legacy: Collection) -> None:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo

    from ..nodes import record_to_node
    from ..search.segment import Segment
    from .base import segment_key

    head = legacy.get(ids=[_LEGACY_KEY], include=["documents"])
    old = json.loads((head["documents"] or ["{}"])[0] or "{}")
    manifest = Manifest.model_validate({**old, "schema_version": SCHEMA_VERSION})
    got = legacy.get(where={"type": "doc"}, include=["documents"])
    entries = [json.loads(d or "{}") for d in got["documents"] or []]
    text, image = store.collection("text"), store.collection("image")
    documents: dict[str, DocumentEntry] = {}
    for raw in entries:
        doc = str(raw["doc"])
        version = new_version()
        records: dict[str, tuple[str, dict[str, Any]]] = {}
        layout: tuple[tuple[Collection, tuple[Space, ...]], ...] = (
            (text, ("text", "figure")),
            (image, ("image",)),
        )
        for collection, spaces in layout:
            rows = collection.get(
                where={"doc": doc}, include=["embeddings", "documents", "metadatas"]
            )
            if not rows["ids"]:
                continue
            nodes, vectors, kinds = [], np.asarray(rows["embeddings"], np.float32), []
            for rid, body, meta in zip(
                rows["ids"], rows["documents"] or [], rows["metadatas"] or [], strict=True
            ):
                node = record_to_node(record_id(rid, version), body or "", dict(meta or {}))
                node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(
                    node_id=ref_doc_id(doc, version)
                )
                nodes.append(node)
                kinds.append((meta or {}).get("kind") == "figure")
                if collection is text:
                    records[node.node_id] = (body or "", dict(meta or {}))
            for space in spaces:
                keep = [i for i, fig in enumerate(kinds) if space != "figure" or fig]
                if keep:
                    store.upsert(space, [nodes[i] for i in keep], vectors[keep])
            collection.delete(ids=list(rows["ids"]))
        pngs = legacy.get(
            where={"$and": [{"type": "png"}, {"doc": doc}]}, include=["documents", "metadatas"]
        )
        for body, meta in zip(pngs["documents"] or [], pngs["metadatas"] or [], strict=True):
            name = str((meta or {}).get("name", ""))
            store.put_blob(store.png_key(doc, version, name), base64.b64decode(body or ""))
        store.put_blob(segment_key(doc, version), Segment.build(doc, version, records).to_bytes())
        documents[doc] = DocumentEntry.model_validate({**raw, "version": version})
    store.commit(
        Catalog(
            manifest=manifest.model_copy(update={"generation": manifest.generation + 1}),
            documents=documents,
        )
    )
    if store.folder is not None:
        store.client.delete_collection(f"{store.name}_meta")
        shutil.rmtree(store.folder / "search", ignore_errors=True)
    else:
        old_types: Any = {"type": {"$in": ["store", "doc", "png"]}}
        legacy.delete(where=old_types)
