# mypy: disable-error-code="no-untyped-call"
"""Captions for uncaptioned figures: the HF image-to-text path, an LLM path, ingestion, CLI."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
)
from llama_index.core.llms import CustomLLM
from pydantic import Field

from multimodal_rag import cli
from multimodal_rag.captioning import Captioner, HFCaptioner, LLMCaptioner, caption_missing
from multimodal_rag.citations import source_body, source_header
from multimodal_rag.config import LoaderConfig
from multimodal_rag.errors import ModelNotFoundError
from multimodal_rag.index import MultimodalIndex
from multimodal_rag.records import Figure

from .support.blip import make_tiny_blip
from .support.embedders import HashEmbedding
from .support.pdfs import _raster_png


def _png(color: tuple[int, int, int], size: tuple[int, int] = (90, 70)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _figure(caption: str | None, png: bytes, page: int = 1) -> Figure:
    label = "Figure 1" if caption else None
    return Figure(
        doc="m.pdf", page=page, bbox=(0, 0, 10, 10), kind="raster", image_png=png,
        label=label, caption=caption,
    )  # fmt: skip


class Fixed:
    """Captions each image with a fixed sentence and counts the images it saw."""

    name = "fixed"

    def __init__(self, text: str = "a wiring sketch of the buzzer and battery") -> None:
        self.text = text
        self.seen: list[bytes] = []

    def caption(self, images: Sequence[bytes]) -> list[str]:
        self.seen += list(images)
        return [self.text for _ in images]


class Broken:
    name = "broken"

    def caption(self, images: Sequence[bytes]) -> list[str]:
        raise ConnectionError("the captioning service is down")


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_blip(tmp_path_factory.mktemp("blip"))


@pytest.fixture(scope="module")
def uncaptioned_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One page: a paragraph and a photo with no caption and no reference to it."""
    import pymupdf

    path = tmp_path_factory.mktemp("pdf") / "photo.pdf"
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_text((72, 90), "Unpack the box and keep the receipt.", fontsize=11)
    page.insert_image(pymupdf.Rect(150, 200, 390, 350), stream=_raster_png())
    doc.save(str(path))
    doc.close()
    return path


def test_tiny_blip_captions_are_deterministic_and_batch_independent(tiny_blip: Path) -> None:
    images = [_png((200, 30, 30)), _png((30, 30, 200), (40, 120)), _png((30, 200, 30))]
    one_by_one = HFCaptioner(str(tiny_blip), max_new_tokens=6, batch_size=1)
    batched = HFCaptioner(str(tiny_blip), max_new_tokens=6, batch_size=8)
    first = one_by_one.caption(images)
    assert isinstance(one_by_one, Captioner)
    assert len(first) == 3 and all(isinstance(t, str) and t.strip() for t in first)
    assert batched.caption(images) == first
    assert one_by_one.caption(images[:1]) == first[:1]


def test_hf_captioner_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        HFCaptioner(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="config.json"):
        HFCaptioner(str(tmp_path / "empty"))


def test_caption_missing_only_touches_uncaptioned_figures() -> None:
    printed = _figure("Front panel.", _png((1, 2, 3)))
    bare = _figure(None, _png((4, 5, 6)), page=2)
    done = Figure(**{**vars(bare), "generated_caption": "already there"})
    captioner = Fixed("  a photo\n of the  box ")
    out = caption_missing([printed, bare, done], captioner)
    assert captioner.seen == [bare.image_png]
    assert out[0] is printed and out[2] is done
    assert out[1].generated_caption == "a photo of the box"
    assert out[1].caption is None and out[1].label is None
    assert out[1].text.startswith("a photo of the box")


def test_caption_missing_rejects_a_wrong_number_of_captions() -> None:
    class Short:
        name = "short"

        def caption(self, images: Sequence[bytes]) -> list[str]:
            return []

    with pytest.raises(ValueError, match="0 captions for 1 images"):
        caption_missing([_figure(None, _png((1, 1, 1)))], Short())


class ImageLLM(CustomLLM):
    """Records the chat messages it receives; answers with a fixed caption."""

    answer: str = "The ExpEYES front panel with its 32 terminals."
    received: list[list[ChatMessage]] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True)

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.received.append(list(messages))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=self.answer))

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError


def test_llm_captioner_sends_each_image_with_the_prompt() -> None:
    llm = ImageLLM()
    pngs = [_png((9, 9, 9)), _png((99, 99, 99))]
    out = LLMCaptioner(llm, prompt="Describe it.").caption(pngs)
    assert out == [llm.answer, llm.answer]
    assert len(llm.received) == 2
    for messages, png in zip(llm.received, pngs, strict=True):
        (message,) = messages
        image, text = message.blocks
        assert isinstance(image, ImageBlock) and isinstance(text, TextBlock)
        assert text.text == "Describe it."
        assert image.resolve_image().read() == png


def _open(store: Path) -> MultimodalIndex:
    return MultimodalIndex.open(
        store,
        profile_name="offline",
        text_embedder=HashEmbedding(),
        loader_config=LoaderConfig(ocr=False),
    )


def test_ingest_stores_generated_captions_apart_and_finds_figures_by_them(
    tmp_path: Path, uncaptioned_pdf: Path
) -> None:
    index = _open(tmp_path / "s")
    captioner = Fixed()
    index.ingest([uncaptioned_pdf], captioner=captioner)
    assert len(captioner.seen) == 1
    hits = index.as_retriever().search("wiring sketch buzzer battery")
    figure = next(h for h in hits if h.kind == "figure")
    assert figure.rank == 1
    assert figure.caption is None and figure.figure is None
    assert figure.generated_caption == captioner.text
    assert figure.to_json()["caption"] is None
    assert captioner.text in str(figure.to_json()["text"])
    header = source_header(figure)
    assert header.endswith(f"Unlabelled figure (generated caption: {captioner.text})")
    assert captioner.text not in source_body(figure)
    text_hit = next(h for h in hits if h.kind == "text")
    assert text_hit.generated_caption is None


def test_ingest_without_captioner_leaves_figures_uncaptioned(
    tmp_path: Path, uncaptioned_pdf: Path
) -> None:
    index = _open(tmp_path / "s")
    index.ingest([uncaptioned_pdf])
    figure = next(h for h in index.as_retriever().search("receipt") if h.kind == "figure")
    assert figure.generated_caption is None and figure.caption is None


def test_a_failing_captioner_costs_no_document(
    tmp_path: Path, uncaptioned_pdf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = _open(tmp_path / "s")
    with caplog.at_level(logging.WARNING, logger="multimodal_rag.index"):
        report = index.ingest([uncaptioned_pdf], captioner=Broken())
    assert [d.status for d in report.documents] == ["added"]
    assert index.info()["figures"] == 1
    assert "captioning with broken failed (ConnectionError" in caplog.text


def test_cli_caption_missing_with_a_local_model(
    tmp_path: Path, uncaptioned_pdf: Path, tiny_blip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s"
    argv = ["ingest", str(uncaptioned_pdf), "--store", str(store), "--profile", "offline"]
    code = cli.main(
        [*argv, "--no-ocr", "--json", "--caption-missing", "--caption-model", str(tiny_blip)]
    )
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    hits = MultimodalIndex.open(store).as_retriever().search("receipt")
    figure = next(h for h in hits if h.kind == "figure")
    assert figure.caption is None and figure.generated_caption
    assert figure.text.startswith(figure.generated_caption)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--caption-model", "x"], "--caption-model needs --caption-missing"),
        (["--caption-missing", "--caption-model", "./no/such/model"], "no such folder"),
    ],
)
def test_cli_caption_errors_exit_2_with_one_line(
    tmp_path: Path,
    uncaptioned_pdf: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    store = tmp_path / "s"
    code = cli.main(["ingest", str(uncaptioned_pdf), "--store", str(store), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err
    assert not store.exists()
