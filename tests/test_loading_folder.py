"""Tests of the article-folder loader (Markdown, HTML and plain-text articles with images)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from PIL import Image

from multimodal_rag.config import LoaderConfig
from multimodal_rag.errors import DocumentLoadError
from multimodal_rag.loading.folder import load_folder
from multimodal_rag.records import LoadedDocument

SKELETON = "The feline skeleton has about 250 bones, more than a human one has."
CLAWS = "The paw has retractable claws that the cat sheathes while walking."

CAT_MD = f"""# Cat

The cat is a small domesticated carnivorous mammal.

## Anatomy

{SKELETON} See ![Figure 1: Skeleton of a cat](img/skeleton.png "ignored title") for the bones.

![](img/paw.jpg)

{CLAWS}

```
# not a heading inside a code fence
```
"""

DOG_HTML = """<!doctype html><html><head><title>Dog - Wiki</title>
<style>p {{ color: red }}</style><script>var secret = "scriptword";</script></head>
<body><nav>Jump to navigation</nav>
<h1>Dog</h1><p>The dog is a domesticated descendant of the wolf.</p>
<h2>Breeds</h2>
<p>Beagles were bred for hunting hares by scent.</p>
<figure><a href="x"><img src="images/beagle.png" alt="a tricolour puppy"></a>
<figcaption>Figure 2: A beagle puppy</figcaption></figure>
<p>Their ears are long &amp; soft.</p>
<p>A collar <img src="images/collar%20tag.png" alt="Collar tag with PV1 marking"> carries a tag
with the owner's number and the town.</p>
<p>Remote: <img src="https://example.org/remote.png" alt="remote"></p>
</body></html>"""

FOX_TXT = """Foxes are small omnivorous mammals.

== Habitat ==
Foxes live on every continent except Antarctica.
"""


def _image(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


@pytest.fixture
def wiki(tmp_path: Path) -> Path:
    root = tmp_path / "wiki"
    root.mkdir()
    (root / "cat.md").write_text(CAT_MD, encoding="utf-8")
    _image(root / "img" / "skeleton.png", (40, 30), (200, 10, 10))
    _image(root / "img" / "paw.jpg", (24, 16), (10, 200, 10))
    (root / "dog.html").write_text(DOG_HTML, encoding="utf-8")
    _image(root / "images" / "beagle.png", (32, 32), (10, 10, 200))
    _image(root / "images" / "collar tag.png", (12, 8), (90, 90, 90))
    (root / "fox.txt").write_text(FOX_TXT, encoding="utf-8")
    _image(root / "images" / "fox_1.png", (10, 10), (1, 2, 3))
    _image(root / "images" / "Fox-den.jpg", (20, 10), (50, 60, 70))
    _image(root / "fox.png", (8, 8), (4, 5, 6))
    _image(root / "images" / "foxglove.png", (8, 8), (7, 8, 9))  # another word: not the fox's
    (root / ".hidden").mkdir()
    (root / ".hidden" / "draft.md").write_text("# Draft\n\nignored", encoding="utf-8")
    return root


def _by_doc(docs: list[LoadedDocument]) -> dict[str, LoadedDocument]:
    return {d.doc: d for d in docs}


def _png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        width, height = img.size
        return width, height


def test_one_document_per_article(wiki: Path) -> None:
    docs = load_folder(wiki)
    assert [d.doc for d in docs] == ["cat.md", "dog.html", "fox.txt"]
    for d in docs:
        assert d.pages == 1
        assert all(c.page == 1 for c in d.chunks)
        assert all(f.page == 1 and f.kind == "raster" for f in d.figures)
        assert [c.index for c in d.chunks] == list(range(len(d.chunks)))
        assert len(d.content_hash) == 64


def test_markdown_article_sections_and_figures(wiki: Path) -> None:
    cat = _by_doc(load_folder(wiki))["cat.md"]
    assert [c.section for c in cat.chunks] == ["Cat", "Anatomy"]
    anatomy = cat.chunks[1].text
    assert SKELETON in anatomy and CLAWS in anatomy
    assert "![" not in anatomy and "img/" not in anatomy
    assert "not a heading inside a code fence" in anatomy  # fenced code stays text
    skeleton, paw = cat.figures
    assert (skeleton.label, skeleton.caption) == ("Figure 1", "Skeleton of a cat")
    assert skeleton.bbox == (0.0, 0.0, 40.0, 30.0)
    assert _png_size(skeleton.image_png) == (40, 30)
    assert skeleton.section == "Anatomy"
    assert SKELETON in skeleton.context_text  # the paragraph holding the reference
    assert (paw.label, paw.caption) == (None, None)
    assert paw.bbox == (0.0, 0.0, 24.0, 16.0)
    # An image alone on its line takes the paragraphs around it as context.
    assert SKELETON in paw.context_text and CLAWS in paw.context_text


def test_html_article_figure_caption_and_context(
    wiki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="multimodal_rag.loading.folder"):
        dog = _by_doc(load_folder(wiki))["dog.html"]
    assert "remote.png" in caplog.text
    text = "\n".join(c.text for c in dog.chunks)
    assert "scriptword" not in text and "color: red" not in text and "navigation" not in text
    assert "long & soft" in text
    assert [c.section for c in dog.chunks] == ["Dog", "Breeds"]
    beagle, collar = dog.figures
    assert (beagle.label, beagle.caption) == ("Figure 2", "A beagle puppy")
    assert beagle.section == "Breeds"
    assert "hunting hares" in beagle.context_text and "long & soft" in beagle.context_text
    assert "a tricolour puppy" in beagle.context_text  # alt kept when a figcaption wins
    assert _png_size(beagle.image_png) == (32, 32)
    assert (collar.label, collar.caption) == (None, "Collar tag with PV1 marking")
    assert "owner's number" in collar.context_text
    assert collar.bbox == (0.0, 0.0, 12.0, 8.0)


def test_text_article_takes_images_named_after_it(wiki: Path) -> None:
    fox = _by_doc(load_folder(wiki))["fox.txt"]
    assert [c.section for c in fox.chunks] == [None, "Habitat"]
    assert "Antarctica" in fox.chunks[1].text
    sizes = sorted(_png_size(f.image_png) for f in fox.figures)
    assert sizes == [(8, 8), (10, 10), (20, 10)]  # fox.png, fox_1.png, Fox-den.jpg; no foxglove
    assert all(f.caption is None and f.label is None for f in fox.figures)
    assert all(f.context_text == "fox" for f in fox.figures)


def test_chunks_respect_size_overlap_and_nfkc(tmp_path: Path) -> None:
    words = " ".join(f"word{i}" for i in range(200))
    (tmp_path / "long.md").write_text(
        f"# Ｌｏｎｇ\n\nThe ﬁrst line.\n\n{words}\n", encoding="utf-8"
    )
    config = LoaderConfig(chunk_size=200, chunk_overlap=40)
    (doc,) = load_folder(tmp_path, config)
    assert doc.chunks[0].section == "Long"  # NFKC folds full-width letters
    assert "The first line." in doc.chunks[0].text  # and the fi ligature
    assert len(doc.chunks) > 5
    assert all(len(c.text) <= 200 for c in doc.chunks)
    for prev, nxt in zip(doc.chunks, doc.chunks[1:], strict=False):
        first_word = nxt.text.split()[0]
        assert first_word in prev.text.split()  # overlap repeats whole words
    joined = " ".join(c.text for c in doc.chunks)
    assert all(f"word{i}" in joined.split() for i in range(200))


def test_content_hash_follows_images(wiki: Path) -> None:
    before = _by_doc(load_folder(wiki))
    again = _by_doc(load_folder(wiki))
    assert {k: d.content_hash for k, d in before.items()} == {
        k: d.content_hash for k, d in again.items()
    }
    _image(wiki / "img" / "paw.jpg", (24, 16), (255, 255, 0))
    after = _by_doc(load_folder(wiki))
    assert after["cat.md"].content_hash != before["cat.md"].content_hash
    assert after["dog.html"].content_hash == before["dog.html"].content_hash


def test_bad_images_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.md").write_text(
        "# A\n\n![missing](nope.png) ![broken](broken.png) ![big](big.png) ![ok](ok.png)"
        " ![escape](../outside.png)\n",
        encoding="utf-8",
    )
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    _image(tmp_path / "big.png", (100, 100), (0, 0, 0))
    _image(tmp_path / "ok.png", (5, 5), (0, 0, 0))
    _image(tmp_path.parent / "outside.png", (5, 5), (0, 0, 0))
    with caplog.at_level(logging.WARNING, logger="multimodal_rag.loading.folder"):
        (doc,) = load_folder(tmp_path, LoaderConfig(max_image_pixels=1000))
    assert [f.caption for f in doc.figures] == ["ok"]
    for name in ("nope.png", "cannot decode", "exceeds the limit", "outside the folder"):
        assert name in caplog.text


def test_bad_input_is_a_document_load_error(tmp_path: Path) -> None:
    with pytest.raises(DocumentLoadError, match="no such folder"):
        load_folder(tmp_path / "missing")
    (tmp_path / "file.md").write_text("# x", encoding="utf-8")
    with pytest.raises(DocumentLoadError, match="not a folder"):
        load_folder(tmp_path / "file.md")
    empty = tmp_path / "only-images"
    _image(empty / "pic.png", (4, 4), (0, 0, 0))
    with pytest.raises(DocumentLoadError, match="no readable article"):
        load_folder(empty)


def test_markdown_inline_html_image_and_bracketed_source(tmp_path: Path) -> None:
    (tmp_path / "wiring.md").write_text(
        'Wire the pump <img src="a.png" alt="Fig. 3.2 - Wiring of PV1"> to the valve block.\n\n'
        "![Front panel](<front panel.png>)\n",
        encoding="utf-8",
    )
    _image(tmp_path / "a.png", (9, 9), (0, 0, 0))
    _image(tmp_path / "front panel.png", (7, 5), (0, 0, 0))
    (doc,) = load_folder(tmp_path)
    assert [(f.label, f.caption) for f in doc.figures] == [
        ("Figure 3.2", "Wiring of PV1"),
        (None, "Front panel"),
    ]
    assert doc.chunks[0].text == "Wire the pump to the valve block."
    assert doc.figures[1].bbox == (0.0, 0.0, 7.0, 5.0)
