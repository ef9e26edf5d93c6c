"""Safe image decoding and content-addressed PNG files, shared by every loader."""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from pathlib import Path

from PIL import Image

from ..errors import DocumentLoadError, StoreError


def decode_image(
    data: bytes, *, max_pixels: int, path: str | Path, page: int | None = None
) -> Image.Image:
    """Decode image bytes, refusing images too large to decode safely.

    Args:
        data: Encoded image (PNG, JPEG, ...).
        max_pixels: Largest width*height accepted.
        path: Source, for the error message.
        page: 1-based page, for the error message.

    Returns:
        The decoded image, loaded into memory.

    Raises:
        DocumentLoadError: The bytes are not an image, or it is too large.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns before its own bomb limit; we apply ours first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise DocumentLoadError(
                    f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels",
                    path=path,
                    page=page,
                )
            img.load()
    except DocumentLoadError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DocumentLoadError(f"cannot decode image: {e}", path=path, page=page) from e
    return img


def to_png(img: Image.Image) -> bytes:
    """Encode an image as PNG (RGB or RGBA; palette and CMYK images converted)."""
    if img.mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
    buf = io.BytesIO()
    # zlib level 1: encoding at the default level 6 was a quarter of the loader's time on
    # the dev manuals, for files only about 10-20 % smaller.
    img.save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def png_name(png: bytes) -> str:
    """Content-addressed file name of a PNG: the same image always gets the same name."""
    return hashlib.sha256(png).hexdigest()[:16] + ".png"


def save_png(png: bytes, out_dir: str | Path) -> Path:
    """Write a PNG into ``out_dir`` under its content address, once.

    Args:
        png: PNG bytes.
        out_dir: Folder to write into (created if missing).

    Returns:
        The path of the file (existing or newly written).

    Raises:
        StoreError: The folder cannot be created or the file written (a full
            disk, a read-only folder); no partial file is left behind.
    """
    out = Path(out_dir)
    target = out / png_name(png)
    if target.exists():
        return target
    tmp = target.with_suffix(".png.tmp")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(png)
        tmp.replace(target)  # atomic: a crash never leaves a half-written image
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StoreError(
            f"cannot write figure image {target.name}: {e.strerror or e}", location=out
        ) from e
    return target
