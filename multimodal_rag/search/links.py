"""Figure links: which passages refer to which figures, and what lies on the same page.

Links never cross documents, so one document's links are computed from its
own records alone (at ingest, into its search segment).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

Place = tuple[str, int, str]
"""``(doc, page, kind)`` of a record."""


def place_of(meta: Mapping[str, Any]) -> Place:
    """A record's (doc, page, kind) from its metadata."""
    return str(meta.get("doc", "")), int(meta.get("page", 0) or 0), str(meta.get("kind", "text"))


# "Figure 2.3", "Fig. 2.3", "figure 2.3"; the number stops before a further digit,
# so "Figure 2.31" never mentions Figure 2.3.
_MENTION = re.compile(r"\bfig(?:ure|\.)?\s*(\d+(?:[.\-]\d+)*[a-z]?)(?!\d)", re.IGNORECASE)
_LABEL_NUMBER = re.compile(r"(\d+(?:[.\-]\d+)*[a-z]?)\s*$", re.IGNORECASE)


def figure_links(
    records: Mapping[str, tuple[str, Mapping[str, Any]]], *, pages: bool = True
) -> dict[str, list[str]]:
    """Link passages to figures: passages that name a figure's label, and the
    passages printed on the same page as a figure (captioned or not).

    A page's text is the best description of its figures that the store
    already holds: on the dev manuals the page of a paraphrased figure question
    often ranks in the top five while the caption alone does not (docs/fusion.md),
    so every figure inherits evidence from the passages beside it.

    Each passage is scanned once for figure mentions, so the cost grows with
    the text, not with passages times figures.

    Args:
        records: Record id -> (text, metadata) for passages and figure texts.
        pages: Link captioned figures to their page's passages too; ``False``
            keeps page links for uncaptioned figures only (they have no label
            to be named by).

    Returns:
        Passage id -> ids of the figures it links to: those it names first, then
        the others on its page, in record order, each once.
    """
    places = {rid: place_of(meta) for rid, (_, meta) in records.items()}
    labelled: dict[tuple[str, str], list[str]] = {}  # (doc, number) -> figure ids
    for rid, (_, meta) in records.items():
        doc, _, kind = places[rid]
        found = _LABEL_NUMBER.search(str(meta.get("figure") or "")) if kind == "figure" else None
        if found is not None:
            labelled.setdefault((doc, found.group(1).lower()), []).append(rid)
    links: dict[str, list[str]] = {}
    for rid, (text, _) in records.items():
        doc, _, kind = places[rid]
        if kind == "text":
            named = [
                fid
                for number in dict.fromkeys(m.group(1).lower() for m in _MENTION.finditer(text))
                for fid in labelled.get((doc, number), [])
            ]
            if named:
                links[rid] = named
    captioned = {fid for fids in labelled.values() for fid in fids}
    # An uncaptioned figure is linked through its page whatever ``pages`` says.
    return add_page_links(links, places, skip=set() if pages else captioned)


def add_page_links(
    links: Mapping[str, Sequence[str]],
    places: Mapping[str, Place],
    *,
    skip: Collection[str] = (),
) -> dict[str, list[str]]:
    """Extend passage -> figure links with the figures printed on each passage's page.

    Args:
        links: Passage id -> figure ids it already links to (kept first, in order).
        places: Record id -> (doc, page, kind) of every passage and figure.
        skip: Figures not to link by page.

    Returns:
        The extended links, each figure once per passage, page figures in record order.

    Example:
        >>> add_page_links({"p1": ["f9"]}, {"p1": ("m", 1, "text"), "f1": ("m", 1, "figure")})
        {'p1': ['f9', 'f1']}
    """
    on_page: dict[tuple[str, int], list[str]] = {}
    for rid, (doc, page, kind) in places.items():
        if kind == "figure" and rid not in skip:
            on_page.setdefault((doc, page), []).append(rid)
    out = {rid: list(figs) for rid, figs in links.items()}
    for rid, (doc, page, kind) in places.items():
        if kind == "text" and (beside := on_page.get((doc, page))):
            out[rid] = list(dict.fromkeys([*out.get(rid, []), *beside]))
    return out


def own_figures(
    links: Mapping[str, Sequence[str]], places: Mapping[str, Place]
) -> dict[str, list[str]]:
    """For each passage, the figures it links to that are printed on its own page."""
    own: dict[str, list[str]] = {}
    for rid, figs in links.items():
        where = places.get(rid, ("", 0, ""))[:2]
        if same := [f for f in figs if places.get(f, ("", -1, ""))[:2] == where]:
            own[rid] = same
    return own
