from __future__ import annotations

from collections import Counter

from multimodal_rag.loading.text import (
    Paragraph,
    Row,
    chunk_paragraphs,
    compound_words,
    join_rows,
    normalize,
    page_rows,
    paragraphs,
)

BOX = (0.0, 0.0, 10.0, 10.0)


def _span(text: str, size: float = 10.0, flags: int = 4, font: str = "Serif") -> dict[str, object]:
    return {"text": text, "size": size, "flags": flags, "font": font}


def _line(bbox: tuple[float, float, float, float], *spans: dict[str, object]) -> dict[str, object]:
    return {"bbox": bbox, "spans": list(spans)}


def test_normalize_expands_ligatures_and_collapses_space() -> None:
    assert normalize("  e\ufb03cient \ufb01le\n\ufb02ow ") == "efficient file flow"


def test_join_rows_undoes_hyphenation_before_lowercase() -> None:
    assert join_rows(["Press to conti-", "nue the setup."]) == "Press to continue the setup."


def test_join_rows_keeps_hyphen_before_capital_or_digit() -> None:
    assert join_rows(["a Geiger-", "Muller tube"]) == "a Geiger-Muller tube"
    assert join_rows(["a 12-", "bit converter"]) == "a 12-bit converter"


def test_join_rows_keeps_compound_the_document_writes_hyphenated() -> None:
    vocab = compound_words(["sample the wave-form here", "a square wave-form again"])
    assert join_rows(["it shows the wave-", "form of the input"], vocab) == (
        "it shows the wave-form of the input"
    )
    # Seen joined somewhere too: the plain word wins.
    vocab.update(["waveform"])
    assert join_rows(["the wave-", "form"], vocab) == "the waveform"


def test_compound_words_ignores_the_line_end_fragment() -> None:
    counts = compound_words(["the input wave-"])
    assert counts == Counter({"the": 1, "input": 1})


def test_join_rows_drops_soft_hyphens() -> None:
    assert join_rows(["infor\u00ad", "mation"]) == "information"


def test_page_rows_joins_lines_on_one_baseline_and_reads_fonts() -> None:
    text_dict = {
        "blocks": [
            {"type": 1, "bbox": BOX},
            {
                "type": 0,
                "lines": [
                    _line((200, 100, 300, 110), _span("second half", 10.0)),
                    _line((100, 100, 190, 110), _span("SQR2", 10.0, flags=20)),
                    _line((100, 112, 300, 122), _span("next \ufb01ne line", 10.0)),
                ],
            },
            {"type": 0, "lines": [_line((100, 50, 300, 64), _span("Title", 14.0, font="CMBX12"))]},
        ]
    }
    rows = page_rows(text_dict)
    assert [r.text for r in rows] == ["SQR2 second half", "next fine line", "Title"]
    assert rows[0].bbox == (100, 100, 300, 110)
    assert not rows[0].bold  # only its first span is bold: a run-in label, not a heading
    assert rows[2].bold and rows[2].size == 14.0
    assert rows[0].block == rows[1].block != rows[2].block


def _row(text: str, y: float, x: float = 72.0, block: int = 0) -> Row:
    return Row(text, (x, y, 400.0, y + 10.0), 10.0, False, block)


def test_paragraphs_split_at_gaps_blocks_headings_and_list_items() -> None:
    rows = [
        _row("Heading", 0, block=0),
        _row("First line of a para-", 12, block=1),
        _row("graph that goes on.", 23, block=1),
        _row("After a gap.", 50, block=1),
        _row("1. a list item", 61, block=1),
        _row("Other block.", 72, block=2),
    ]
    paras = paragraphs(rows, {0}, Counter())
    assert [p.text for p in paras] == [
        "Heading",
        "First line of a paragraph that goes on.",
        "After a gap.",
        "1. a list item",
        "Other block.",
    ]
    assert [p.heading for p in paras] == [True, False, False, False, False]
    assert paras[1].bbox == (72.0, 12.0, 400.0, 33.0)


def test_chunks_respect_size_and_break_at_sentences_then_words() -> None:
    text = " ".join(f"Sentence number {i} says something short." for i in range(30))
    chunks = chunk_paragraphs([Paragraph(text, BOX)], size=200, overlap=0)
    assert len(chunks) > 1
    for c in chunks:
        assert len(c.text) <= 200
        assert c.text.startswith("Sentence") and c.text.endswith("short.")
    assert " ".join(c.text for c in chunks) == text
    # A sentence longer than the chunk is cut between words.
    long = "word " * 100
    pieces = chunk_paragraphs([Paragraph(long.strip(), BOX)], size=101, overlap=0)
    assert all(
        len(p.text) <= 101 and p.text.split() == ["word"] * len(p.text.split()) for p in pieces
    )


def test_chunks_overlap_with_whole_sentences_of_the_previous_chunk() -> None:
    text = " ".join(f"Fact {i} is true." for i in range(40))
    chunks = chunk_paragraphs([Paragraph(text, BOX)], size=150, overlap=40)
    assert len(chunks) > 2
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        shared = max(k for k in range(len(nxt.text) + 1) if prev.text.endswith(nxt.text[:k]))
        assert 0 < shared <= 40
        assert nxt.text[:shared].endswith(" is true.")  # whole sentences


def test_new_segment_starts_a_chunk_unless_the_chunk_is_tiny() -> None:
    paras = [
        Paragraph("Objective", BOX, heading=True, segment=0),
        Paragraph("Measure a thing. " * 7, BOX, segment=0),
        Paragraph("Theory", BOX, heading=True, segment=1),
        Paragraph("Short.", BOX, segment=1),
        Paragraph("Procedure", BOX, heading=True, segment=2),
        Paragraph("Do it.", BOX, segment=2),
    ]
    chunks = chunk_paragraphs(paras, size=300, overlap=50)
    assert [c.text.split("\n")[0] for c in chunks] == ["Objective", "Theory"]
    assert chunks[1].text == "Theory\nShort.\nProcedure\nDo it."  # tiny sections merged
    assert dict(chunks[1].segments) == {1: len("Theory") + 6, 2: len("Procedure") + 6}
    assert not chunks[1].text.startswith("Measure")  # no overlap across a section start


def test_heading_is_never_left_at_the_end_of_a_chunk() -> None:
    paras = [
        Paragraph("Body text. " * 8, BOX, segment=0),
        Paragraph("Next Part", BOX, heading=True, segment=0),
        Paragraph("More body text that does not fit. " * 2, BOX, segment=0),
    ]
    chunks = chunk_paragraphs(paras, size=120, overlap=0)
    assert not chunks[0].text.endswith("Next Part")
    assert chunks[1].text.startswith("Next Part\nMore body")
