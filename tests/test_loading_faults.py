"""Loader faults: nothing read outside a folder, broken PDFs as DocumentLoadError, odd text."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from multimodal_rag.config import LoaderConfig
from multimodal_rag.errors import DocumentLoadError
from multimodal_rag.loading.folder import load_folder
from multimodal_rag.loading.pdf import load_pdf

from .support.pdfs import make_manual_pdf
from .support.raw_pdfs import page_count_pdf, page_tree_cycle_pdf, pixel_bomb_pdf

NO_OCR = LoaderConfig(ocr=False)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the one loaded, holding a secret article and a secret image."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.md").write_text("# Secret\n\nThe launch code is zebra-42.\n")
    Image.new("RGB", (64, 48), (200, 20, 20)).save(out / "secret.png")
    Image.new("RGB", (64, 48), (20, 200, 20)).save(out / "cat-face.png")
    return out


def _wiki(tmp_path: Path, article: str = "# Cat\n\nCats purr when they are content.\n") -> Path:
    wiki = tmp_path / "wiki"
    wiki.mkdir()
    (wiki / "cat.md").write_text(article)
    return wiki


def _everything(docs: list) -> str:  # type: ignore[type-arg]
    return " ".join(c.text for d in docs for c in d.chunks)


def test_reference_with_dotdot_is_not_read(tmp_path: Path, outside: Path) -> None:
    wiki = _wiki(tmp_path, "# Cat\n\nA cat. ![Figure 1: x](../outside/secret.png)\n")
    (doc,) = load_folder(wiki, NO_OCR)
    assert doc.figures == ()


def test_reference_to_a_symlink_pointing_outside_is_not_read(tmp_path: Path, outside: Path) -> None:
    wiki = _wiki(tmp_path, "# Cat\n\nA cat. ![Figure 1: x](face.png)\n")
    (wiki / "face.png").symlink_to(outside / "secret.png")
    (doc,) = load_folder(wiki, NO_OCR)
    assert doc.figures == ()


def test_image_found_by_name_that_links_outside_is_not_read(
    tmp_path: Path, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wiki = _wiki(tmp_path)  # no reference: images named after the article are its figures
    (wiki / "cat.png").symlink_to(outside / "secret.png")
    Image.new("RGB", (64, 48), (10, 10, 200)).save(wiki / "cat_2.png")
    with caplog.at_level(logging.WARNING):
        (doc,) = load_folder(wiki, NO_OCR)
    assert [f.bbox[2:] for f in doc.figures] == [(64.0, 48.0)]
    assert Image.open(io.BytesIO(doc.figures[0].image_png)).getpixel((0, 0)) == (10, 10, 200)
    assert "outside the folder" in caplog.text


def test_images_folder_that_links_outside_is_not_read(tmp_path: Path, outside: Path) -> None:
    wiki = _wiki(tmp_path)
    (wiki / "images").symlink_to(outside, target_is_directory=True)
    (doc,) = load_folder(wiki, NO_OCR)
    assert doc.figures == ()


def test_article_that_links_outside_is_not_loaded(tmp_path: Path, outside: Path) -> None:
    wiki = _wiki(tmp_path)
    (wiki / "dog.md").symlink_to(outside / "secret.md")
    docs = load_folder(wiki, NO_OCR)
    assert [d.doc for d in docs] == ["cat.md"]
    assert "zebra" not in _everything(docs)


def test_folder_that_links_outside_is_not_walked(tmp_path: Path, outside: Path) -> None:
    wiki = _wiki(tmp_path)
    (wiki / "more").symlink_to(outside, target_is_directory=True)
    docs = load_folder(wiki, NO_OCR)
    assert [d.doc for d in docs] == ["cat.md"]
    assert "zebra" not in _everything(docs)


def test_links_that_stay_inside_the_folder_still_work(tmp_path: Path) -> None:
    wiki = _wiki(tmp_path, "# Cat\n\nA cat. ![Figure 1: Face](face.png)\n")
    store = wiki / "media"
    store.mkdir()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(store / "real.png")
    (wiki / "face.png").symlink_to(store / "real.png")
    (doc,) = load_folder(wiki, NO_OCR)
    assert [f.label for f in doc.figures] == ["Figure 1"]


# ---------------------------------------------------------------- text articles


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_unicode_encodings_are_detected(tmp_path: Path, encoding: str) -> None:
    wiki = tmp_path / "wiki"
    wiki.mkdir()
    (wiki / "cafe.md").write_bytes("# Café\n\nCrème brûlée, naïve façade.\n".encode(encoding))
    (doc,) = load_folder(wiki, NO_OCR)
    text = _everything([doc])
    assert "Crème brûlée, naïve façade." in text
    assert "\0" not in text


def test_binary_article_is_refused_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wiki = _wiki(tmp_path)
    (wiki / "blob.txt").write_bytes(bytes(range(256)) * 8)
    with caplog.at_level(logging.WARNING):
        docs = load_folder(wiki, NO_OCR)
    assert [d.doc for d in docs] == ["cat.md"]
    assert "blob.txt: holds NUL bytes" in caplog.text


def test_oversized_article_is_refused_before_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wiki = _wiki(tmp_path)
    (wiki / "huge.txt").write_text("word " * 60_000)
    with caplog.at_level(logging.WARNING):
        docs = load_folder(wiki, LoaderConfig(ocr=False, max_text_bytes=100_000))
    assert [d.doc for d in docs] == ["cat.md"]
    assert "huge.txt: article is 0.3 MB, over the 0.1 MB limit" in caplog.text
    assert "max_text_bytes" in caplog.text


# ---------------------------------------------------------------- PDFs


def test_page_tree_cycle_costs_the_page_not_a_traceback(tmp_path: Path) -> None:
    pdf = tmp_path / "cycle.pdf"
    pdf.write_bytes(page_tree_cycle_pdf())
    loaded = load_pdf(pdf, NO_OCR)
    assert loaded.skipped_pages == (2,)
    assert "The first page reads fine." in _everything([loaded])


@pytest.mark.parametrize("count", [b"-1", b"2147483647"])
def test_invalid_page_count_is_a_document_load_error(tmp_path: Path, count: bytes) -> None:
    pdf = tmp_path / "count.pdf"
    pdf.write_bytes(page_count_pdf(count))
    with pytest.raises(DocumentLoadError, match="broken page tree") as exc:
        load_pdf(pdf, NO_OCR)
    assert exc.value.path == pdf


_PEAK = """
import json, resource, sys
from multimodal_rag.config import LoaderConfig
from multimodal_rag.loading.pdf import load_pdf
config = LoaderConfig(ocr=False, max_image_pixels=1_000_000)
load_pdf(sys.argv[1], config)  # warm: imports, MuPDF's caches
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loaded = load_pdf(sys.argv[2], config)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"kb": after - before, "figures": len(loaded.figures)}))
"""


def test_pixel_cap_is_checked_before_anything_is_decoded(tmp_path: Path) -> None:
    small = make_manual_pdf(tmp_path / "manual.pdf")
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(pixel_bomb_pdf(10_000, 10_000))  # 300 MB of pixels, 0.3 MB of file
    assert bomb.stat().st_size < 2_000_000
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(small), str(bomb)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got["figures"] == 0
    assert got["kb"] < 60_000, got  # decoding it once would add 300,000 KB


def test_file_name_that_is_not_utf8_is_kept_as_on_disk(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9 manual.pdf")
    target = tmp_path / name
    try:
        make_manual_pdf(tmp_path / "m.pdf").rename(target)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes UTF-8 names only")
    loaded = load_pdf(target, NO_OCR)
    assert loaded.doc == "caf\\xe9 manual.pdf"
    assert loaded.doc.encode("utf-8")  # Chroma and JSON take it
    assert len(loaded.chunks) > 5 and len(loaded.figures) == 2
