"""Figure pixels: extract an embedded image, or render a page region, as safe PNG."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import DocumentLoadError
from ..records import BBox
from .images import decode_image

if TYPE_CHECKING:
    import pymupdf
    from PIL import Image


def is_blank(img: Image.Image) -> bool:
    """Whether every pixel has the same colour (a spacer or an empty region)."""
    extrema = img.getextrema()
    if isinstance(extrema[0], tuple):
        return all(lo == hi for lo, hi in extrema)
    return extrema[0] == extrema[1]


def extract_image(
    doc: pymupdf.Document, xref: int, *, max_pixels: int, path: str, page: int
) -> Image.Image:
    """Decode the embedded image ``xref`` as stored (native resolution).

    Raises:
        DocumentLoadError: It cannot be read or decoded, or it is too large.
    """
    import pymupdf

    # extract_image decodes every image it cannot hand back as stored (all but JPEG and
    # friends), so the cap is checked from the image dictionary first.
    width, height = _xref_int(doc, xref, "Width"), _xref_int(doc, xref, "Height")
    if width * height > max_pixels:
        raise DocumentLoadError(
            f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels",
            path=path,
            page=page,
        )
    try:
        info = doc.extract_image(xref)  # type: ignore[no-untyped-call]
    except (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase) as e:
        raise DocumentLoadError(
            f"cannot extract image xref {xref}: {e}", path=path, page=page
        ) from e
    if not info or not info.get("image"):
        raise DocumentLoadError(f"image xref {xref} has no data", path=path, page=page)
    if int(info.get("width", 0)) * int(info.get("height", 0)) > max_pixels:
        raise DocumentLoadError(
            f"image of {info['width']}x{info['height']} pixels exceeds the limit of "
            f"{max_pixels} pixels",
            path=path,
            page=page,
        )
    return decode_image(info["image"], max_pixels=max_pixels, path=path, page=page)


def _xref_int(doc: pymupdf.Document, xref: int, key: str) -> int:
    """An integer entry of an object's dictionary; 0 when absent or not an integer."""
    import pymupdf

    try:
        kind, value = doc.xref_get_key(xref, key)  # type: ignore[no-untyped-call]
    except (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase):
        return 0
    try:
        return int(value) if kind == "int" else 0
    except ValueError:
        return 0


def render_region(
    page: pymupdf.Page, bbox: BBox, *, dpi: int, max_pixels: int, path: str
) -> Image.Image:
    """Render a region of the page, lowering the resolution to stay under ``max_pixels``.

    Raises:
        DocumentLoadError: MuPDF cannot render the region.
    """
    import pymupdf
    from PIL import Image as PILImage

    w_in, h_in = (bbox[2] - bbox[0]) / 72, (bbox[3] - bbox[1]) / 72
    if w_in * h_in * dpi * dpi > max_pixels:
        dpi = max(1, math.floor(math.sqrt(max_pixels / (w_in * h_in))))
    try:
        clip = pymupdf.Rect(bbox)  # type: ignore[no-untyped-call]
        pix = page.get_pixmap(clip=clip, dpi=dpi, alpha=False)
    except (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase) as e:
        raise DocumentLoadError(
            f"cannot render region {bbox}: {e}", path=path, page=page.number + 1
        ) from e
    mode = {1: "L", 3: "RGB"}.get(pix.n)
    if mode is None or pix.width * pix.height == 0:
        raise DocumentLoadError(
            f"cannot render region {bbox}: {pix.n} channels", path=path, page=page.number + 1
        )
    # Straight from MuPDF's samples: no PNG round trip before the one PNG we keep.
    return PILImage.frombytes(mode, (pix.width, pix.height), pix.samples, "raw", mode, pix.stride)
