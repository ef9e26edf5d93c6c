"""Load a folder of Wikipedia-style articles (Markdown, plain text, HTML) with their images.

Each article file (``.md``/``.markdown``, ``.txt``, ``.html``/``.htm``, found
recursively, hidden files and folders skipped) becomes one
:class:`~multimodal_rag.records.LoadedDocument` whose ``doc`` is its path
relative to the folder (``"animals/cat.md"``); an article is one page.

- Sections start at headings: Markdown ``#``..``######``, HTML ``<h1>``..``<h6>``,
  MediaWiki ``== Title ==`` in ``.txt``. Chunks never cross a section.
- Figures are the images the text references: Markdown ``![alt](src "title")``
  and inline ``<img>``; HTML ``<img src alt>`` inside or outside ``<figure>``.
  Sources resolve relative to the article (a leading ``/`` means the folder
  root) and must stay inside the folder. ``<figcaption>``, else the alt text
  (else the Markdown title), is the caption; ``"Figure 3: ..."`` gives label
  ``"Figure 3"``. The paragraph holding the reference is the figure's context;
  when it has little text of its own (an image alone on its line, a
  ``<figure>``), the paragraphs just before and after it in the section are.
- An article that references no image at all gets the images beside it or in
  an ``images/`` folder beside it whose file name starts with the article's
  stem followed by a non-letter (case-insensitive): ``Cat.txt`` takes
  ``cat.jpg``, ``Cat_2.png``, ``images/cat-skull.png``, never ``Catalog.png``.
  Their context is the article's title.
- Remote sources (``http:``, ``//``, ``data:``) are skipped with an info log (no
  network); a missing, undecodable or oversized image is skipped with a warning.
- Nothing outside the folder is ever read, whatever the route: a reference
  with ``../``, an image found by its name, an article or an ``images/`` folder
  that is a symlink. Every path is resolved (symlinks followed) and skipped
  with a warning when it lands outside; symlinked folders are not walked.
- Articles are UTF-8, or UTF-16/UTF-32 (by byte-order mark, or UTF-16 told by
  its NUL bytes), else read as cp1252; a file with NUL bytes that is not
  UTF-16 is refused, and so is one larger than ``LoaderConfig.max_text_bytes``.
  A ``doc`` keeps the file name as on disk; bytes that are not UTF-8 are
  written ``\\xNN``.

``content_hash`` covers the article's bytes and the bytes of every image it
uses, so editing an image re-ingests the article.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from ..config import LoaderConfig
from ..errors import DocumentLoadError
from ..records import Figure, LoadedDocument, TextChunk
from .images import decode_image, to_png
from .names import doc_name
from .textfiles import decode_text

__all__ = ["ARTICLE_SUFFIXES", "IMAGE_SUFFIXES", "load_folder"]

logger = logging.getLogger(__name__)

ARTICLE_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
_MIN_OWN_CONTEXT = 40  # chars; below this a paragraph is "just the image" and neighbours count

BlockKind = Literal["heading", "para", "caption", "anchor"]


@dataclass
class _Block:
    kind: BlockKind
    text: str


@dataclass
class _Ref:
    src: str
    alt: str
    block: int
    caption: str = ""


@dataclass
class _Parsed:
    blocks: list[_Block] = field(default_factory=list)
    refs: list[_Ref] = field(default_factory=list)
    title: str = ""

    def add(self, kind: BlockKind, text: str, refs: list[_Ref] | None = None) -> None:
        text = _clean(text)
        if kind == "heading" and not self.title and not self.blocks:  # opens the article
            self.title = text
        if text or refs:
            for ref in refs or []:
                ref.block = len(self.blocks)
                self.refs.append(ref)
            self.blocks.append(_Block(kind if text else "anchor", text))


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


# ---------------------------------------------------------------- Markdown and plain text
_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_WIKI_HEADING = re.compile(r"^(={1,6})\s*(.+?)\s*\1\s*$")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*(?:<([^>]*)>|([^)\s]*))(?:\s+[\"'(](.*?)[\"')])?\s*\)")
_HTML_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ATTR = re.compile(r"""(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_MARKUP = re.compile(r"<[^>]+>|\*\*|__|`")


def _parse_lines(text: str, markdown: bool) -> _Parsed:
    out = _Parsed()
    para: list[str] = []
    fence = False

    def flush() -> None:
        raw = "\n".join(para)
        para.clear()
        if not markdown:
            out.add("para", raw)
            return
        refs = [_Ref(m[2] or m[3], m[1] or m[4] or "", 0) for m in _MD_IMAGE.finditer(raw)]
        for tag in _HTML_IMG.findall(raw):
            attrs = {m[0].lower(): m[1] or m[2] or m[3] for m in _ATTR.findall(tag)}
            refs.append(_Ref(attrs.get("src", ""), attrs.get("alt", ""), 0))
        body = _MD_MARKUP.sub("", _MD_LINK.sub(r"\1", _MD_IMAGE.sub(" ", raw)))
        out.add("para", body, refs)

    for line in text.splitlines():
        if markdown and line.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        heading = None if fence else (_MD_HEADING if markdown else _WIKI_HEADING).match(line)
        if heading:
            flush()
            out.add("heading", heading.group(2))
        elif not line.strip() and not fence:
            flush()
        else:
            para.append(line)
    flush()
    return out


# ---------------------------------------------------------------- HTML
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "nav", "footer", "svg"})
_BLOCK_TAGS = frozenset(
    "p div li ul ol dl dt dd table tr thead tbody section article main header body blockquote "
    "pre br hr caption aside details summary".split()
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


class _HtmlArticle(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = _Parsed()
        self._skip = 0
        self._buf: list[str] = []
        self._refs: list[_Ref] = []
        self._heading = False
        self._figure: list[_Ref] | None = None
        self._caption: list[str] | None = None
        self._title: list[str] | None = None

    def _flush(self) -> None:
        self.out.add("heading" if self._heading else "para", "".join(self._buf), self._refs)
        self._buf, self._refs = [], []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._title = []
        elif tag in _SKIP_TAGS:
            self._skip += 1
        elif self._skip:
            return
        elif tag == "img":
            a = dict(attrs)
            ref = _Ref(a.get("src") or a.get("data-src") or "", a.get("alt") or "", 0)
            (self._figure if self._figure is not None else self._refs).append(ref)
        elif tag == "figure":
            self._flush()
            self._figure, self._caption = [], None
        elif tag == "figcaption":
            self._caption = []
        elif tag in _HEADINGS or tag in _BLOCK_TAGS:
            self._flush()
            self._heading = tag in _HEADINGS
        elif tag in ("td", "th"):
            self._buf.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.out.title = self.out.title or _clean("".join(self._title))
            self._title = None
        elif tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif self._skip:
            return
        elif tag == "figure" and self._figure is not None:
            caption = _clean("".join(self._caption or []))
            for ref in self._figure:
                ref.caption = caption
            self.out.add("caption", caption, self._figure)
            self._figure, self._caption = None, None
        elif tag in _HEADINGS or tag in _BLOCK_TAGS:
            self._flush()
            self._heading = False

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        elif self._skip:
            return
        elif self._caption is not None:
            self._caption.append(data)
        elif self._figure is None:
            self._buf.append(data)


def _parse_html(text: str) -> _Parsed:
    parser = _HtmlArticle()
    parser.feed(text)
    parser.close()
    parser._flush()
    return parser.out


# ---------------------------------------------------------------- chunks and figures
_LABEL = re.compile(
    r"^\s*fig(?:ure)?\.?\s*(\d+(?:[.\-]\d+)*[a-z]?)\b\s*[:.\-\u2013\u2014]?\s*", re.I
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _split_long(text: str, size: int) -> list[str]:
    """Cut a paragraph longer than ``size`` at sentence ends, then at spaces."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > size:
            cut = sentence.rfind(" ", 0, size + 1)
            cut = cut if cut > 0 else size
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


def _chunk_section(paras: list[str], size: int, overlap: int) -> list[str]:
    # Pieces leave room for the overlap, or a long paragraph's chunks would never overlap.
    limit = max(size - overlap, size // 2)
    pieces = [
        p for para in paras for p in ([para] if len(para) <= limit else _split_long(para, limit))
    ]
    chunks: list[str] = []
    cur = ""
    for piece in pieces:
        if cur and len(cur) + 1 + len(piece) > size:
            chunks.append(cur)
            tail = cur[-overlap:] if overlap else ""
            if tail and len(cur) > overlap and not cur[-overlap - 1].isspace():
                tail = tail.split(" ", 1)[1] if " " in tail else ""  # start on a word
            cur = f"{tail.strip()} {piece}" if tail and len(tail) + len(piece) < size else piece
        else:
            cur = f"{cur}\n{piece}" if cur else piece
    return [*chunks, cur] if cur else chunks


def _context(blocks: list[_Block], i: int, limit: int) -> str:
    own = blocks[i].text if blocks[i].kind == "para" else ""
    if len(own) >= _MIN_OWN_CONTEXT:
        return own[:limit]
    parts = [own] if own else []
    for step in (-1, 1):
        j = i + step
        while 0 <= j < len(blocks) and blocks[j].kind in ("anchor", "caption"):
            j += step
        if 0 <= j < len(blocks) and blocks[j].kind == "para":
            parts.insert(0 if step < 0 else len(parts), blocks[j].text)
    return " ".join(parts)[:limit]


def _split_label(caption: str) -> tuple[str | None, str | None]:
    m = _LABEL.match(caption)
    if not m:
        return None, caption or None
    return f"Figure {m.group(1)}", caption[m.end() :].strip() or None


def _resolve(src: str, article: Path, root: Path) -> Path | None:
    src = unquote(src.split("#", 1)[0].split("?", 1)[0]).strip()
    if not src:
        return None
    if src.startswith("//") or re.match(r"^[a-z][a-z0-9+.\-]*:", src, re.I):
        logger.info("%s: skipping remote image %s (no network)", article, src[:80])
        return None
    path = _inside(root / src.lstrip("/") if src.startswith("/") else article.parent / src, root)
    if path is None:
        logger.warning("%s: image %s lies outside the folder; skipped", article, src)
        return None
    if not path.is_file():
        logger.warning("%s: image %s not found; skipped", article, src)
        return None
    return path


def _inside(path: Path, root: Path) -> Path | None:
    """``path`` with every symlink resolved, or ``None`` when that lands outside ``root``.

    Every file the loader reads goes through here, whichever way it was found
    (a reference, a file name, the folder walk), so a symlink to ``/etc`` or a
    ``../`` can never bring an outside file into the store. ``root`` is resolved.
    """
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop, or an unreadable parent
        return None
    return real if real.is_relative_to(root) else None


def _stem_images(article: Path, root: Path) -> list[Path]:
    stem = article.stem.lower()
    found = set()
    for folder in (article.parent, article.parent / "images"):
        if _inside(folder, root) is None or not folder.is_dir():
            continue
        try:
            entries = sorted(folder.iterdir())
        except OSError as e:
            logger.warning("%s: cannot list %s (%s); its images skipped", article, folder, e)
            continue
        for p in entries:
            name = p.name.lower()
            rest = name[len(stem) : len(stem) + 1]
            if p.suffix.lower() not in IMAGE_SUFFIXES or not name.startswith(stem):
                continue
            if rest.isalpha():
                continue
            real = _inside(p, root)
            if real is None:
                logger.warning("%s: image %s lies outside the folder; skipped", article, p)
            elif real.is_file():
                found.add(real)
    return sorted(found)


def _read_article(path: Path, real: Path, limit: int) -> bytes:
    """The article's bytes, refusing files over ``limit`` before reading them."""
    try:
        size = real.stat().st_size
        if size <= limit:
            with real.open("rb") as fh:
                raw = fh.read(limit + 1)  # a file that grows while read is still capped
            size = len(raw)
    except OSError as e:
        raise DocumentLoadError(f"cannot read article: {e.strerror or e}", path=path) from e
    if size > limit:
        raise DocumentLoadError(
            f"article is {size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit for text "
            "files (LoaderConfig.max_text_bytes)",
            path=path,
        )
    return raw


def _load_article(path: Path, root: Path, config: LoaderConfig, real: Path) -> LoadedDocument:
    doc = doc_name(path.relative_to(root))
    raw = _read_article(path, real, config.max_text_bytes)
    text = decode_text(raw, path=path)
    suffix = path.suffix.lower()
    parsed = (
        _parse_html(text) if suffix in (".html", ".htm") else _parse_lines(text, suffix != ".txt")
    )
    title = parsed.title or _clean(path.stem.replace("_", " "))
    digest = hashlib.sha256(raw)

    chunks: list[TextChunk] = []
    section: str | None = None
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    ref_sections: dict[int, str | None] = {}
    for i, block in enumerate(parsed.blocks):
        if block.kind == "heading":
            section = block.text
            sections.append((section, [block.text]))
        elif block.kind != "anchor":
            sections[-1][1].append(block.text)
        ref_sections[i] = section
    for sec, paras in sections:
        for text_ in _chunk_section(paras, config.chunk_size, config.chunk_overlap):
            chunks.append(TextChunk(doc=doc, page=1, section=sec, text=text_, index=len(chunks)))

    targets: list[tuple[Path, _Ref | None]] = []
    seen: set[Path] = set()
    for r in parsed.refs:
        image = _resolve(r.src, path, root)
        if image is not None and image not in seen:
            seen.add(image)
            targets.append((image, r))
    if not parsed.refs:
        targets = [(p, None) for p in _stem_images(path, root)]

    figures: list[Figure] = []
    for image, ref in targets:
        try:
            data = image.read_bytes()
        except OSError as e:
            logger.warning("%s: cannot read image %s (%s); skipped", path, image, e)
            continue
        digest.update(b"\0" + os.fsencode(image.relative_to(root).as_posix()) + b"\0" + data)
        try:
            img = decode_image(data, max_pixels=config.max_image_pixels, path=image)
            png = to_png(img)
        except (DocumentLoadError, OSError, ValueError) as e:
            logger.warning("%s: image skipped: %s", path, e)
            continue
        caption = _clean(ref.caption or ref.alt) if ref else ""
        label, caption_text = _split_label(caption)
        context = _context(parsed.blocks, ref.block, config.chunk_size) if ref else title
        if ref and ref.caption and ref.alt and _clean(ref.alt) not in caption:
            context = f"{_clean(ref.alt)}\n{context}".strip()  # alt says what the image shows
        figures.append(
            Figure(
                doc=doc,
                page=1,
                bbox=(0.0, 0.0, float(img.width), float(img.height)),
                kind="raster",
                image_png=png,
                label=label,
                caption=caption_text,
                context_text=context,
                section=ref_sections.get(ref.block) if ref else None,
            )
        )
    return LoadedDocument(
        doc=doc,
        path=str(path),
        content_hash=digest.hexdigest(),
        pages=1,
        chunks=tuple(chunks),
        figures=tuple(figures),
    )


def load_folder(path: str | Path, config: LoaderConfig | None = None) -> list[LoadedDocument]:
    """Load every article of a folder, with the images it uses, one document per article.

    Args:
        path: The folder; searched recursively (hidden entries skipped).
        config: Chunk size, overlap and image pixel cap; defaults to ``LoaderConfig()``.

    Returns:
        One :class:`LoadedDocument` per article, sorted by ``doc``. An article
        that cannot be read is skipped with a warning.

    Raises:
        DocumentLoadError: The path is missing, is not a folder, or holds no
            readable article.

    Example:
        >>> docs = load_folder("wiki/")  # doctest: +SKIP
        >>> docs[0].doc, docs[0].figures[0].label  # doctest: +SKIP
        ('cat.md', 'Figure 1')
    """
    config = config or LoaderConfig()
    root = Path(path)
    if not root.exists():
        raise DocumentLoadError("no such folder", path=root)
    if not root.is_dir():
        raise DocumentLoadError("not a folder (load a PDF with the PDF loader)", path=root)
    root = root.resolve()
    articles = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in ARTICLE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    docs: list[LoadedDocument] = []
    for article in articles:
        real = _inside(article, root)
        if real is None:
            logger.warning("%s: article is a link to a file outside the folder; skipped", article)
            continue
        try:
            docs.append(_load_article(article, root, config, real))
        except DocumentLoadError as e:
            logger.warning("%s; skipped", e)
    if not docs:
        raise DocumentLoadError(
            f"no readable article ({', '.join(sorted(ARTICLE_SUFFIXES))}) in the folder",
            path=root,
        )
    return docs
