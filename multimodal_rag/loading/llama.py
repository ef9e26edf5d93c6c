"""LlamaIndex at both ends of the loader: documents from any reader in, our loader as a reader.

- :func:`from_llama` turns LlamaIndex ``Document``s, ``ImageDocument``s and
  nodes (from ``SimpleDirectoryReader`` or any other reader) into
  :class:`~multimodal_rag.records.LoadedDocument`\\ s: one per source file, its
  text chunked like our articles, its images as figures with their text.
- :class:`MultimodalReader` offers the PDF/folder loader as a LlamaIndex
  ``BaseReader``: text chunks as ``Document``\\ s and figures as
  ``ImageDocument``\\ s, with our metadata (page, section, figure label,
  caption, image path), for pipelines of other libraries.

A source's name (its citation key and stable id) is the first of: metadata
``file_name``, ``file_path`` (its name), ``doc_name``, the node's
``ref_doc_id``, and a hash of its text; page numbers come from ``page_label``
(or ``page``) when numeric, else from the order of the source's documents.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.readers.base import BaseReader

from ..config import LoaderConfig
from ..errors import DocumentLoadError
from ..records import Figure, LoadedDocument, TextChunk
from .images import decode_image, to_png
from .text import Paragraph, chunk_paragraphs, normalize

if TYPE_CHECKING:
    from llama_index.core.schema import BaseNode, Document

_NO_BOX = (0.0, 0.0, 0.0, 0.0)


def is_llama_node(item: object) -> bool:
    """Whether ``item`` is a LlamaIndex document or node (not a path)."""
    from llama_index.core.schema import BaseNode

    return isinstance(item, BaseNode)


def source_name(node: BaseNode) -> str:
    """The citation name of the source a document or node came from."""
    meta = node.metadata
    for key in ("file_name", "file_path", "doc_name"):
        if meta.get(key):
            return Path(str(meta[key])).name
    if node.ref_doc_id:
        return str(node.ref_doc_id)
    text = node.get_content()
    return f"document-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def _page(node: BaseNode, fallback: int) -> int:
    for key in ("page_label", "page", "page_number"):
        value = str(node.metadata.get(key, "")).strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return fallback


def _image_bytes(node: BaseNode, source: str, config: LoaderConfig) -> bytes | None:
    """A node's image as PNG bytes, or ``None`` when it has none."""
    raw: bytes | None = None
    image = getattr(node, "image", None)
    path = getattr(node, "image_path", None) or node.metadata.get("image_path")
    if not image and not path and _is_image_file(node):
        path = node.metadata.get("file_path")
    if image:
        try:
            raw = base64.b64decode(image, validate=False)
        except ValueError as e:
            raise DocumentLoadError(f"image is not base64: {e}", path=source) from e
    elif path:
        try:
            raw = Path(str(path)).read_bytes()
        except OSError as e:
            raise DocumentLoadError(f"cannot read image {path}: {e.strerror}", path=source) from e
    if raw is None:
        return None
    return to_png(decode_image(raw, max_pixels=config.max_image_pixels, path=source))


def _is_image_file(node: BaseNode) -> bool:
    """A plain ``Document`` that a reader made from an image file (its text is the raw bytes
    when the reader had no image support, as ``SimpleDirectoryReader`` without Pillow
    readers)."""
    return str(node.metadata.get("file_type", "")).startswith("image/")


def from_llama(
    items: Iterable[BaseNode], config: LoaderConfig | None = None
) -> list[LoadedDocument]:
    """Group LlamaIndex documents/nodes by source and load each as one document.

    Args:
        items: ``Document``, ``ImageDocument``, ``TextNode`` or ``ImageNode`` objects.
        config: Chunk size and overlap (text is re-chunked), image pixel cap.

    Returns:
        One loaded document per source, in first-seen order.

    Raises:
        DocumentLoadError: An image that cannot be read or decoded (names the source).

    Example:
        >>> from llama_index.core import Document
        >>> [d.doc for d in from_llama([Document(text="Hi.", metadata={"file_name": "a.txt"})])]
        ['a.txt']
    """
    config = config or LoaderConfig()
    groups: dict[str, list[BaseNode]] = {}
    for item in items:
        groups.setdefault(source_name(item), []).append(item)
    return [_load_group(name, nodes, config) for name, nodes in groups.items()]


def _load_group(name: str, nodes: Sequence[BaseNode], config: LoaderConfig) -> LoadedDocument:
    from llama_index.core.schema import ImageNode, MetadataMode

    digest = hashlib.sha256()
    chunks: list[TextChunk] = []
    figures: list[Figure] = []
    pages = 0
    for order, node in enumerate(nodes, start=1):
        page = _page(node, order)
        pages = max(pages, page)
        text = normalize(node.get_content(metadata_mode=MetadataMode.NONE))
        digest.update(f"{page}\0{text}\0".encode("utf-8", "surrogatepass"))
        section = str(node.metadata.get("section") or "") or None
        # ImageNode and ImageDocument (not an ImageNode in LlamaIndex 0.14) carry the fields.
        carries_image = bool(getattr(node, "image", None) or getattr(node, "image_path", None))
        is_image = isinstance(node, ImageNode) or carries_image or _is_image_file(node)
        png = _image_bytes(node, name, config) if is_image else None
        if png is not None:
            digest.update(png)
            label = str(node.metadata.get("figure") or "") or None
            own_text = None if _is_image_file(node) and not carries_image else text
            # An image with no words of its own is at least named by its file.
            caption = (
                str(node.metadata.get("caption") or "")
                or own_text
                or Path(name).stem.replace("_", " ").replace("-", " ")
            )
            figures.append(
                Figure(
                    name,
                    page,
                    _NO_BOX,
                    "raster",
                    png,
                    label=label,
                    caption=caption,
                    section=section,
                )
            )
            continue
        paras = [Paragraph(p.strip(), _NO_BOX) for p in text.split("\n\n") if p.strip()]
        for chunk in chunk_paragraphs(paras, config.chunk_size, config.chunk_overlap):
            chunks.append(TextChunk(name, page, section, chunk.text, index=len(chunks)))
    return LoadedDocument(
        doc=name,
        path=str(nodes[0].metadata.get("file_path") or name),
        content_hash=digest.hexdigest(),
        pages=max(pages, 1),
        chunks=tuple(chunks),
        figures=tuple(figures),
    )


class MultimodalReader(BaseReader):
    """The PDF/folder loader as a LlamaIndex reader.

    ``load_data(path)`` returns a ``Document`` per text chunk and an
    ``ImageDocument`` per figure (its PNG written to ``image_dir``), each with
    our metadata (``doc``, ``page``, ``section``, ``kind``, ``figure``,
    ``caption``, ``image_path``).

    Args:
        config: Loader settings.
        image_dir: Where figure PNGs are written (default: a ``figures`` folder
            beside each source).

    Example:
        >>> from llama_index.core import SimpleDirectoryReader            # doctest: +SKIP
        >>> SimpleDirectoryReader("manuals", file_extractor={".pdf": MultimodalReader()})
    """

    def __init__(
        self, config: LoaderConfig | None = None, image_dir: str | Path | None = None
    ) -> None:
        self.config = config or LoaderConfig()
        self.image_dir = Path(image_dir) if image_dir is not None else None

    def load_data(
        self, file: str | Path, extra_info: dict[str, Any] | None = None, fs: Any = None
    ) -> list[Document]:
        """Load one PDF (or folder of articles) as LlamaIndex documents.

        Args:
            file: A PDF, or a folder of articles.
            extra_info: Metadata added to every document (``SimpleDirectoryReader``
                passes the file's).
            fs: Accepted for ``SimpleDirectoryReader``; only local files are read.

        Raises:
            DocumentLoadError: The file cannot be read.
        """
        from llama_index.core.schema import Document, ImageDocument

        from ..nodes import chunk_metadata, figure_metadata
        from .folder import load_folder
        from .images import save_png
        from .pdf import load_pdf

        path = Path(file)
        loaded = load_folder(path, self.config) if path.is_dir() else [load_pdf(path, self.config)]
        out: list[Document] = []
        for doc in loaded:
            folder = self.image_dir or Path(doc.path).parent / "figures"
            for chunk in doc.chunks:
                if chunk.role == "content":
                    meta = {**chunk_metadata(chunk), **(extra_info or {})}
                    out.append(Document(text=chunk.text, metadata=meta, id_=chunk.chunk_id))
            for figure in doc.figures:
                image_path = str(save_png(figure.image_png, folder))
                meta = {**figure_metadata(figure, image_path), **(extra_info or {})}
                out.append(
                    ImageDocument(
                        text=figure.text, image_path=image_path, metadata=meta, id_=figure.figure_id
                    )
                )
        return out

    def lazy_load_data(self, file: str | Path) -> Iterable[Document]:
        """The same as :meth:`load_data`, one document at a time."""
        yield from self.load_data(file)
