"""LlamaIndex ``MetadataFilters`` evaluated on our records' metadata.

The retriever applies filters while it collects candidates: filters on
``doc``, ``page`` and ``kind`` are answered from the search state's record
places (no record is read), and any other key (``section``, ``figure``,
``caption``, ...) on the records of the fused list, fetched in batches.

Example:
    >>> from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
    >>> f = MetadataFilters(filters=[MetadataFilter(key="page", value=3, operator=">=")])
    >>> matches(f, {"doc": "a.pdf", "page": 4}), matches(f, {"doc": "a.pdf", "page": 2})
    (True, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import QueryError

if TYPE_CHECKING:
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

PLACE_KEYS = frozenset({"doc", "page", "kind"})
"""Keys the search state answers without reading a record."""


def keys_of(filters: MetadataFilters) -> set[str]:
    """Every metadata key a filter tree looks at."""
    from llama_index.core.vector_stores.types import MetadataFilters

    out: set[str] = set()
    for item in filters.filters:
        out |= keys_of(item) if isinstance(item, MetadataFilters) else {item.key}
    return out


def _one(item: MetadataFilter, meta: Mapping[str, Any]) -> bool:
    op = str(getattr(item.operator, "value", item.operator))
    have, want = meta.get(item.key), item.value
    if op == "is_empty":
        return have in (None, "", [])
    if have is None:
        return op in ("!=", "nin")
    try:
        if op == "==":
            return bool(have == want)
        if op == "!=":
            return bool(have != want)
        if op in (">", "<", ">=", "<="):
            return bool(
                {">": have > want, "<": have < want, ">=": have >= want, "<=": have <= want}[op]
            )
        if op in ("in", "nin"):
            options = list(want) if isinstance(want, list) else [want]
            return (have in options) == (op == "in")
        if op in ("contains", "text_match"):
            return str(want) in str(have)
        if op == "text_match_insensitive":
            return str(want).lower() in str(have).lower()
    except TypeError as e:
        raise QueryError(f"filter on {item.key!r} compares {have!r} with {want!r}: {e}") from e
    raise QueryError(f"filter operator {op!r} is not supported on this store's metadata")


def matches(filters: MetadataFilters, meta: Mapping[str, Any]) -> bool:
    """Whether a record's metadata passes a (possibly nested) filter tree."""
    from llama_index.core.vector_stores.types import MetadataFilters

    results = [
        matches(item, meta) if isinstance(item, MetadataFilters) else _one(item, meta)
        for item in filters.filters
    ]
    condition = str(getattr(filters.condition, "value", filters.condition) or "and")
    if condition == "or":
        return any(results)
    if condition == "not":
        return not any(results)
    return all(results)
