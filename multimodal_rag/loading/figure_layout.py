"""Which graphics a caption labels: geometry of captions, groups and running text."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..records import BBox
from .figure_regions import Element, area, intersection, union
from .figure_text import Caption, TextLine

# Farthest a caption sits from its graphics, in caption font sizes; farther still (up to
# CAPTION_FAR_SIZES) when the space between holds no text at all.
CAPTION_GAP_SIZES = 3.5
CAPTION_FAR_SIZES = 7.0
# Short lines between a graphic and its caption ("(a)", "(b)") are sub-figure labels.
SUBLABEL_CHARS = 12
DIRECTIONS = ("below", "above")


@dataclass
class Group:
    """Graphic elements that belong together, and drawings annotating them."""

    elements: list[Element]
    annotations: list[Element] = field(default_factory=list)

    @property
    def bbox(self) -> BBox:
        return union(e.bbox for e in [*self.elements, *self.annotations])

    @property
    def standalone(self) -> bool:
        """Counts as a figure without a caption: a sizeable image or a real drawing."""
        return any((e.kind == "raster" and not e.small) or e.strong for e in self.elements)


def other(direction: str) -> str:
    return "above" if direction == "below" else "below"


def grow(b: BBox, d: float) -> BBox:
    return (b[0] - d, b[1] - d, b[2] + d, b[3] + d)


def _gap(direction: str, caption: BBox, box: BBox) -> float:
    """Vertical distance from a graphic to its caption on the given side of it."""
    return caption[1] - box[3] if direction == "below" else box[1] - caption[3]


def _blocked(caption: Caption, box: BBox, lines: list[TextLine], groups: list[Group]) -> bool:
    """Whether running text sits between a graphic and a caption."""
    top, bottom = sorted([(box[1] + box[3]) / 2, (caption.bbox[1] + caption.bbox[3]) / 2])
    x0, x1 = max(box[0], caption.bbox[0]), min(box[2], caption.bbox[2])
    for i, ln in enumerate(lines):
        if i in caption.lines or len(ln.text) <= SUBLABEL_CHARS:
            continue
        if ln.bbox[3] <= top or ln.bbox[1] >= bottom or ln.bbox[2] <= x0 or ln.bbox[0] >= x1:
            continue
        if not any(intersection(ln.bbox, g.bbox) >= 0.5 * area(ln.bbox) for g in groups):
            return True
    return False


def _empty_between(caption: Caption, box: BBox, lines: list[TextLine]) -> bool:
    """Whether no text at all sits between a graphic and a caption, across their overlap."""
    top, bottom = sorted([(box[1] + box[3]) / 2, (caption.bbox[1] + caption.bbox[3]) / 2])
    top, bottom = max(top, min(box[3], caption.bbox[3])), min(bottom, max(box[1], caption.bbox[1]))
    x0, x1 = max(box[0], caption.bbox[0]), min(box[2], caption.bbox[2])
    return not any(
        i not in caption.lines
        and ln.bbox[3] > top
        and ln.bbox[1] < bottom
        and ln.bbox[2] > x0
        and ln.bbox[0] < x1
        for i, ln in enumerate(lines)
    )


def assign(
    direction: str,
    captions: list[Caption],
    groups: list[Group],
    lines: list[TextLine],
    skip: set[int] | None = None,
    taken: set[int] | None = None,
) -> dict[int, list[int]]:
    """Greedy, nearest first: each caption claims the groups beside it on one side."""
    skip, taken = skip or set(), set(taken or ())
    pairs: list[tuple[float, int, int]] = []
    for ci, cap in enumerate(captions):
        if ci in skip:
            continue
        limit = CAPTION_GAP_SIZES * max(cap.size, 6.0)
        far = CAPTION_FAR_SIZES * max(cap.size, 6.0)
        for gi, g in enumerate(groups):
            b = g.bbox
            gap = _gap(direction, cap.bbox, b)
            overlaps = b[0] < cap.bbox[2] and cap.bbox[0] < b[2]
            near = -3 <= gap <= limit or (limit < gap <= far and _empty_between(cap, b, lines))
            if overlaps and near and not _blocked(cap, b, lines, groups):
                pairs.append((gap, ci, gi))
    claims: dict[int, list[int]] = {}
    for _, ci, gi in sorted(pairs):
        if gi not in taken:
            taken.add(gi)
            claims.setdefault(ci, []).append(gi)
    return claims


# Farthest a side-column caption sits from its graphic, in caption font sizes.
SIDE_GAP_SIZES = 4.0


def assign_beside(
    captions: list[Caption],
    groups: list[Group],
    lines: list[TextLine],
    skip: set[int] | None = None,
    taken: set[int] | None = None,
) -> dict[int, list[int]]:
    """Captions set in a side column, left or right of their graphic, top-aligned with it.

    A caption qualifies for a group when its first line lies within the
    group's height, the horizontal gap is at most :data:`SIDE_GAP_SIZES` font
    sizes and no running text sits in between; nearest first, one group each.
    """
    skip, taken = skip or set(), set(taken or ())
    pairs: list[tuple[float, int, int]] = []
    for ci, cap in enumerate(captions):
        if ci in skip:
            continue
        first = lines[cap.lines[0]].bbox if cap.lines else cap.bbox
        size = max(cap.size, 6.0)
        for gi, g in enumerate(groups):
            b = g.bbox
            if not (b[1] - size <= first[1] and first[3] <= b[3]):
                continue
            gap = cap.bbox[0] - b[2] if cap.bbox[0] >= b[2] - 3 else b[0] - cap.bbox[2]
            if not -3 <= gap <= SIDE_GAP_SIZES * size:
                continue
            lo, hi = (b[2], cap.bbox[0]) if cap.bbox[0] >= b[2] - 3 else (cap.bbox[2], b[0])
            between = any(
                i not in cap.lines
                and ln.bbox[0] >= lo - 1
                and ln.bbox[2] <= hi + 1
                and ln.bbox[1] < first[3]
                and ln.bbox[3] > first[1]
                for i, ln in enumerate(lines)
            )
            if not between:
                pairs.append((gap, ci, gi))
    claims: dict[int, list[int]] = {}
    for _, ci, gi in sorted(pairs):
        if gi not in taken and ci not in claims:
            taken.add(gi)
            claims[ci] = [gi]
    return claims
