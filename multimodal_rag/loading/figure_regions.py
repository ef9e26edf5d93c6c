"""Graphic elements of a page: placed raster images and clusters of vector paths.

The rules here decide what is *content* and what is decoration, from geometry
alone: thin rules, underlines, table grids, boxes around text and page frames
are not figures; icons and strips are too small to be; a cluster of curves and
diagonal strokes is a drawing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..records import BBox
from .figure_text import TextLine

# Below these sizes an image is a rule, strip or bullet, never a figure.
MIN_IMAGE_PX = 32
MIN_STRIP_PX = 20  # a toolbar strip screenshot may be this short, see _big_enough
MIN_IMAGE_PT = 12.0
# Images whose longest side is under an inch are icons and buttons unless they
# sit right next to a larger image or are the only thing a caption points at.
ICON_PT = 72.0
# An image covering most of the page is a scanned page or a background.
BACKGROUND_FRACTION = 0.8
RULE_PT = 2.5
VECTOR_GAP_PT = 8.0


@dataclass
class Element:
    """A raster image placement or a cluster of vector paths on one page."""

    bbox: BBox
    kind: Literal["raster", "vector"]
    px: tuple[int, int] = (0, 0)  # raster: stored width and height in pixels
    masked: bool = False  # raster: drawn through a transparency mask
    small: bool = False
    strong: bool = False  # a vector cluster that is a drawing even without a caption
    shapes: int = 0


def area(b: BBox) -> float:
    """Area of a rectangle (0 for empty ones)."""
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def union(boxes: Iterable[BBox]) -> BBox:
    """Smallest rectangle holding all boxes."""
    bs = list(boxes)
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def intersection(a: BBox, b: BBox) -> float:
    """Area of the overlap of two rectangles."""
    return area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def near(a: BBox, b: BBox, gap: float) -> bool:
    """Whether two rectangles are within ``gap`` points of each other."""
    return a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]


def clusters(boxes: Sequence[BBox], gap: float) -> list[list[int]]:
    """Group boxes that are transitively within ``gap`` of each other (union-find)."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(boxes)), key=lambda i: boxes[i][0])
    for n, i in enumerate(order):
        for j in order[n + 1 :]:
            if boxes[j][0] - gap > boxes[i][2]:
                break  # sorted by x0: nothing further right can touch box i
            if near(boxes[i], boxes[j], gap):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def image_key(info: dict[str, Any]) -> bytes:
    """Identity of a placed image across pages: the digest of its pixels.

    ``get_image_info(hashes=True)`` hashes only the images actually drawn, which
    is far cheaper than ``xrefs=True`` on PDFs that list every image on every page.
    """
    digest = info.get("digest")
    if isinstance(digest, bytes):
        return digest
    return repr((info.get("width"), info.get("height"), info.get("size"))).encode()


def _big_enough(width_px: int, height_px: int) -> bool:
    """Whether a raster image has enough pixels to be a figure rather than an icon or rule.

    A toolbar screenshot is a strip only 25-30 px tall but hundreds wide; it is kept
    when its long side has at least eight times the minimum.

    Example:
        >>> _big_enough(333, 27), _big_enough(26, 26), _big_enough(120, 27)
        (True, False, False)
    """
    short, long = sorted((width_px, height_px))
    if short >= MIN_IMAGE_PX:
        return True
    return short >= MIN_STRIP_PX and long >= 8 * MIN_IMAGE_PX


def raster_elements(
    infos: Sequence[dict[str, Any]], page_rect: BBox, decorations: set[bytes]
) -> list[Element]:
    """Raster images drawn on a page that may be (part of) a figure.

    Args:
        infos: ``page.get_image_info(hashes=True)``: the images drawn on the page.
        page_rect: The page's rectangle.
        decorations: Keys (:func:`image_key`) of images repeated on most pages.
    """
    out: list[Element] = []
    seen: set[tuple[int, ...]] = set()
    page_area = area(page_rect)
    for info in infos:
        x0, y0, x1, y1 = (float(v) for v in info["bbox"])
        bbox = (
            max(x0, page_rect[0]),
            max(y0, page_rect[1]),
            min(x1, page_rect[2]),
            min(y1, page_rect[3]),
        )
        w_pt, h_pt = bbox[2] - bbox[0], bbox[3] - bbox[1]
        if min(w_pt, h_pt) < MIN_IMAGE_PT or image_key(info) in decorations:
            continue
        if not _big_enough(int(info.get("width", 0)), int(info.get("height", 0))):
            continue
        if area(bbox) >= BACKGROUND_FRACTION * page_area:
            continue
        key = tuple(round(v) for v in bbox)
        if key in seen:  # the same image placed twice on the same spot
            continue
        seen.add(key)
        px = (int(info.get("width", 0)), int(info.get("height", 0)))
        small = max(w_pt, h_pt) < ICON_PT
        out.append(Element(bbox, "raster", px, bool(info.get("has-mask")), small=small))
    return out


def _rect(path: dict[str, Any]) -> BBox:
    r = path["rect"]
    x0, y0, x1, y1 = float(r[0]), float(r[1]), float(r[2]), float(r[3])
    # Horizontal and vertical lines have empty rects; give them a hairline's width.
    if x1 - x0 < 0.5:
        x0, x1 = x0 - 0.25, x1 + 0.25
    if y1 - y0 < 0.5:
        y0, y1 = y0 - 0.25, y1 + 0.25
    return (x0, y0, x1, y1)


def _invisible(path: dict[str, Any]) -> bool:
    stroke, fill = path.get("color"), path.get("fill")
    if path.get("type") == "f" or stroke is None:
        return fill is None or all(c > 0.97 for c in fill)  # white on white paper
    return False


def _is_box(path: dict[str, Any], b: BBox) -> bool:
    """A path that only outlines its own rectangle: frame, cell, rounded box."""
    tol = max(1.5, 0.1 * min(b[2] - b[0], b[3] - b[1]))
    points: list[tuple[float, float]] = []
    for item in path["items"]:
        op = item[0]
        if op == "re":
            continue
        if op == "qu":
            if not item[1].is_rectangular:
                return False
            continue
        if op == "l":
            p, q = item[1], item[2]
            if abs(p.x - q.x) > 0.5 and abs(p.y - q.y) > 0.5:
                return False  # a diagonal stroke
            points += [(p.x, p.y), (q.x, q.y)]
        elif op == "c":
            p1, p2, p3, p4 = item[1:5]
            mid = ((p1.x + 3 * p2.x + 3 * p3.x + p4.x) / 8, (p1.y + 3 * p2.y + 3 * p3.y + p4.y) / 8)
            points += [(p1.x, p1.y), (p4.x, p4.y), mid]
    return all(
        min(abs(x - b[0]), abs(x - b[2])) <= tol or min(abs(y - b[1]), abs(y - b[3])) <= tol
        for x, y in points
    )


def _curved_items(path: dict[str, Any]) -> int:
    """Number of curves and slanted strokes in a path."""
    n = 0
    for item in path["items"]:
        if item[0] == "c":
            n += 1
        elif (
            item[0] == "l" and abs(item[1].x - item[2].x) > 0.5 and abs(item[1].y - item[2].y) > 0.5
        ):
            n += 1
    return n


def vector_elements(
    drawings: Sequence[dict[str, Any]],
    page_rect: BBox,
    rasters: Sequence[Element],
    lines: Sequence[TextLine],
    caption_boxes: Sequence[BBox],
) -> list[Element]:
    """Cluster vector paths into drawing candidates.

    Frames around images or captions, page borders and invisible fills are
    dropped first. A cluster of only a few rules (underlines, fraction bars) is
    dropped. A cluster is ``strong`` (a figure without a caption) when it has
    several curved or diagonal paths, enough size, and is not mostly text.
    """
    page_area = area(page_rect)
    kept: list[tuple[BBox, str, int]] = []  # (rect, "rule"|"box"|"shape", curved/slanted items)
    for path in drawings:
        if _invisible(path):
            continue
        b = _rect(path)
        if area(b) > 0.6 * page_area:
            continue
        w, h = b[2] - b[0], b[3] - b[1]
        if min(w, h) <= RULE_PT and _is_box(path, b):
            kept.append((b, "rule", 0))
        elif _is_box(path, b):
            inner = [*(e.bbox for e in rasters), *caption_boxes]
            if any(intersection(b, o) >= 0.8 * area(o) for o in inner):
                continue  # a frame around an image or a caption
            kept.append((b, "box", 0))
        else:
            kept.append((b, "shape", _curved_items(path)))
    out: list[Element] = []
    for group in clusters([k[0] for k in kept], VECTOR_GAP_PT):
        members = [kept[i] for i in group]
        kinds = [m[1] for m in members]
        if all(k == "rule" for k in kinds) and len(kinds) < 3:
            continue
        box = union(m[0] for m in members)
        w, h = box[2] - box[0], box[3] - box[1]
        if w < 20 or h < 10:
            continue
        shapes = kinds.count("shape")
        curved = sum(m[2] for m in members)
        text_area = sum(intersection(ln.bbox, box) for ln in lines)
        # Tables and boxes are axis-aligned; drawings have curves and slanted strokes.
        strong = (
            curved >= 6
            and curved >= 0.25 * len(members)
            and w >= 60
            and h >= 40
            and text_area < 0.35 * area(box)
        )
        out.append(Element(box, "vector", strong=strong, shapes=shapes))
    return out
