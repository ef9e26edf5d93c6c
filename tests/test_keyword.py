"""Tests of the BM25 keyword index and its tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from multimodal_rag.errors import QueryError, StoreError, StoreNotFoundError
from multimodal_rag.keyword import BM25Index, tokenize

MANUAL = {
    "pins": "Connect the scope probe to test point SQ1 and the ground clip to SQ2.",
    "pins2": "The square wave output SQ2 is next to the reset jumper.",
    "valve": "Close valve PV1 before opening PV2; PV1 is the main supply valve.",
    "menu": "To change units open Edit → Preferences and choose Metric.",
    "cli": "Run the tool with -h to list options, or --help for the long help.",
    "errors": "Error code 0x1F means the sensor is disconnected. Check the cable.",
    "adc": "The A/D converter samples at 10 kHz on channel 3.",
    "prose": "Preferences are saved when you close the window. Editing is disabled.",
}


@pytest.fixture
def manual_index() -> BM25Index:
    index = BM25Index()
    index.add(list(MANUAL), list(MANUAL.values()))
    return index


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SQ1", ["sq1", "sq", "1"]),
        ("sq 1", ["sq", "1"]),
        ("Edit → Preferences", ["edit", "preferenc"]),
        ("-h", ["-h", "h"]),
        ("--help", ["--help", "help"]),
        ("0x1F", ["0x1f"]),
        ("A/D", ["a/d", "d"]),
        ("v4.3", ["v4.3", "v4", "v", "4", "3"]),
        ("(PV1).", ["pv1", "pv", "1"]),
        ("Wi-Fi", ["wi-fi", "wifi", "wi", "fi"]),
        ("the batteries of a valve", ["battery", "valv"]),
        ("configure configures configured configuring", ["configur"] * 4),
        ("stopped installed running", ["stop", "install", "run"]),
        ("ＳＱ１", ["sq1", "sq", "1"]),  # full-width forms fold under NFKC
        ("[Shift]+[Ctrl]", ["ctrl+shift", "ctrl", "shift"]),
        ("Ctrl + Shift + N", ["ctrl+shift+n", "ctrl", "shift", "n"]),
        ("CTRL-Z", ["ctrl+z", "ctrl", "z"]),
        ("alt-text", ["alt-text", "alttext", "alt", "text"]),  # a word, not a chord
        ("MaxPDU", ["maxpdu"]),
        ("expEYES kHz", ["expey", "khz"]),
        ("setFrameType", ["setframetyp", "set", "fram", "typ"]),
        ("dtr_state", ["dtr_state", "dtr", "stat"]),
        ("drbd.conf", ["drbd.conf", "drbd", "conf", ".conf"]),
        (".vyp", ["vyp", ".vyp"]),
        ("ATmega328P", ["atmega328p", "atmega", "328"]),
        ("1N4148", ["1n4148", "4148"]),
        ("", []),
    ],
)
def test_tokenize_keeps_technical_tokens(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("SQ1", "pins"),
        ("sq 1", "pins"),
        ("PV1", "valve"),
        ("Edit → Preferences", "menu"),
        ("-h", "cli"),
        ("0x1F", "errors"),
        ("A/D", "adc"),
    ],
)
def test_exact_term_ranks_its_chunk_first(manual_index: BM25Index, query: str, best: str) -> None:
    hits = manual_index.search(query, k=3)
    assert hits[0][0] == best
    assert all(score > 0 for _, score in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_exact_form_outranks_its_parts() -> None:
    index = BM25Index()
    index.add(["exact", "parts"], ["Probe SQ1 here.", "Square 1 of SQ block."])
    assert [doc for doc, _ in index.search("SQ1", k=2)] == ["exact", "parts"]


def test_scores_equal_hand_computed_bm25() -> None:
    k1, b = 1.5, 0.6
    index = BM25Index(k1=k1, b=b)
    # After tokenization: d1 = pump pump valv (3), d2 = pump (1), d3 = valv filter (2).
    index.add(["d1", "d2", "d3"], ["pump pump valve", "pump", "valve filter"])
    avgdl = (3 + 1 + 2) / 3

    def term(tf: int, df: int, dl: int) -> float:
        idf = math.log(1 + (3 - df + 0.5) / (df + 0.5))
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

    expected = {
        "d1": term(2, 2, 3) + term(1, 2, 3),
        "d2": term(1, 2, 1),
        "d3": term(1, 2, 2),
    }
    got = dict(index.search("pump valve", k=10))
    assert got.keys() == expected.keys()
    for doc, score in expected.items():
        assert got[doc] == pytest.approx(score, rel=1e-12)


def test_only_matching_documents_and_k_respected(manual_index: BM25Index) -> None:
    assert manual_index.search("zeppelin", k=5) == []
    assert manual_index.search("the and of", k=5) == []  # stopwords only
    assert len(manual_index.search("valve close open", k=2)) == 2
    with pytest.raises(QueryError):
        manual_index.search("valve", k=0)


def test_remove_really_removes(manual_index: BM25Index) -> None:
    manual_index.remove(["pins", "unknown-id"])
    assert "pins" not in manual_index.ids()
    assert len(manual_index) == len(MANUAL) - 1
    assert "pins" not in [doc for doc, _ in manual_index.search("SQ1", k=10)]
    assert manual_index.search("scope probe", k=10) == []
    # Statistics follow the removal: same scores as an index built without it.
    fresh = BM25Index()
    rest = {k: v for k, v in MANUAL.items() if k != "pins"}
    fresh.add(list(rest), list(rest.values()))
    for query in ("SQ2", "valve", "Preferences", "-h"):
        assert _same(manual_index.search(query, k=10), fresh.search(query, k=10))


def test_many_removals_compact_to_the_same_scores() -> None:
    texts = [f"part P{i} fits slot S{i % 7} with screw M{i % 3}" for i in range(300)]
    ids = [f"c{i}" for i in range(300)]
    index = BM25Index()
    index.add(ids, texts)
    index.search("slot", k=1)
    index.remove(ids[:200])  # more than a quarter: the next search compacts
    fresh = BM25Index()
    fresh.add(ids[200:], texts[200:])
    for query in ("S3 M1", "P250", "part screw"):
        assert _same(index.search(query, k=20), fresh.search(query, k=20))
    assert index.ids() == ids[200:]


def test_readding_an_id_replaces_it(manual_index: BM25Index) -> None:
    manual_index.add(["pins"], ["Nothing about test points any more."])
    assert len(manual_index) == len(MANUAL)
    assert "pins" not in [d for d, _ in manual_index.search("SQ1", k=10)]
    assert manual_index.search("points", k=1)[0][0] == "pins"


def test_incremental_adds_equal_one_batch() -> None:
    batch = BM25Index()
    batch.add(list(MANUAL), list(MANUAL.values()))
    step = BM25Index()
    for doc_id, text in MANUAL.items():
        step.add([doc_id], [text])
        step.search("valve", k=1)  # finalise between adds
    for query in ("SQ2 valve", "Preferences", "A/D channel"):
        assert _same(step.search(query, k=10), batch.search(query, k=10))


def test_save_load_round_trip(manual_index: BM25Index, tmp_path: Path) -> None:
    manual_index.remove(["prose"])
    path = tmp_path / "keyword.npz"
    manual_index.save(path)
    loaded = BM25Index.load(path)
    assert loaded.ids() == manual_index.ids()
    assert (loaded.k1, loaded.b) == (manual_index.k1, manual_index.b)
    for query in ("SQ1", "sq 1", "Edit → Preferences", "-h", "0x1F", "A/D valve"):
        assert loaded.search(query, k=10) == manual_index.search(query, k=10)
    loaded.add(["new"], ["SQ1 again"])  # a loaded index stays incremental
    assert {d for d, _ in loaded.search("SQ1", k=10)[:2]} == {"pins", "new"}
    assert not list(tmp_path.glob("*.tmp"))


def test_empty_index_round_trip(tmp_path: Path) -> None:
    BM25Index().save(tmp_path / "empty.npz")
    loaded = BM25Index.load(tmp_path / "empty.npz")
    assert len(loaded) == 0
    assert loaded.search("anything", k=3) == []


def test_corrupt_or_foreign_files_are_clear_errors(manual_index: BM25Index, tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        BM25Index.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(StoreError, match="corrupt"):
        BM25Index.load(garbage)
    good = tmp_path / "good.npz"
    manual_index.save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(StoreError):
        BM25Index.load(truncated)
    with np.load(good) as z:
        arrays = {name: z[name] for name in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["version"] = 99
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    future = tmp_path / "future.npz"
    np.savez(future, **arrays)
    with pytest.raises(StoreError, match="version 99"):
        BM25Index.load(future)


def _same(actual: list[tuple[str, float]], expected: list[tuple[str, float]]) -> bool:
    """Same ids in the same order, scores equal up to float rounding."""
    return len(actual) == len(expected) and all(
        a[0] == e[0] and math.isclose(a[1], e[1], rel_tol=1e-9)
        for a, e in zip(actual, expected, strict=True)
    )


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("Shift+Ctrl", "chord"),  # written [Shift]+[Ctrl] in the passage
        ("ctrl+z", "undo"),  # written CTRL-Z
        (".vyp", "ext"),  # the extension, not the word "vyp" in prose
        ("include children", "camel"),  # the pieces of setFrameIncludeChildren
        ("328", "mcu"),  # a part number's digit group
    ],
)
def test_exact_term_shapes_find_their_passage(query: str, best: str) -> None:
    index = BM25Index()
    texts = {
        "chord": "To copy the colour to the whole subtree press [Shift]+[Ctrl] while clicking.",
        "shift": "Shift the branch up with the arrow keys, or ctrl the map with the mouse.",
        "undo": "Every change can be undone with CTRL-Z.",
        "ext": "A part of a map is saved with the suffix .vyp for vym part.",
        "prose": "The vyp abbreviation is explained in the glossary.",
        "camel": "The script command setFrameIncludeChildren(true) sets the frame.",
        "mcu": "The board carries an ATmega328P controller.",
    }
    index.add(list(texts), list(texts.values()))
    assert index.search(query, k=1)[0][0] == best


def test_an_identifier_query_asks_for_the_name_not_its_pieces() -> None:
    index = BM25Index()
    texts = {
        "script": "Example macro: setFrameType (Rectangle); setFrameIncludeChildren (true);",
        "dialog": "Frame: include children in the frame of the branch, children and frame "
        "padding, frame colour, the children of the frame.",
    }
    index.add(list(texts), list(texts.values()))
    assert [doc for doc, _ in index.search("setFrameIncludeChildren", k=5)] == ["script"]
    assert tokenize("setFrameType", pieces=False) == ["setframetyp"]
    assert index.search("include children", k=1)[0][0] == "dialog"


def test_merged_parts_rank_exactly_as_one_index_built_at_once() -> None:
    import random

    rng = random.Random(7)
    words = [f"w{i}" for i in range(400)] + ["SQ1", "--force", "drbd.conf", "0x1F"]
    docs = {f"d{i}": " ".join(rng.choices(words, k=rng.randint(3, 40))) for i in range(300)}
    whole = BM25Index()
    whole.add(list(docs), list(docs.values()))
    parts = []
    ids = list(docs)
    for start in range(0, len(ids), 70):
        part = BM25Index()
        chunk = ids[start : start + 70]
        part.add(chunk, [docs[i] for i in chunk])
        parts.append(BM25Index.from_bytes(part.to_bytes()))
    merged = BM25Index.merge(parts)
    assert merged.ids() == ids
    for query in ["w1 w2", "SQ1", "--force drbd.conf", "w399 0x1f w7 w7", "absent"]:
        assert merged.search(query, 25) == whole.search(query, 25)


def test_merge_refuses_an_id_in_two_parts() -> None:
    a, b = BM25Index(), BM25Index()
    a.add(["x"], ["one"])
    b.add(["x"], ["two"])
    with pytest.raises(ValueError, match="more than one part"):
        BM25Index.merge([a, b])


def test_an_uncompressed_index_reads_back_the_same_and_is_larger() -> None:
    index = BM25Index()
    index.add([f"d{i}" for i in range(50)], [f"pump seal valve {i} SQ{i % 7}" for i in range(50)])
    plain, packed = index.to_bytes(compress=False), index.to_bytes()
    assert len(plain) > len(packed)
    for data in (plain, packed):
        assert BM25Index.from_bytes(data).search("sq3 valve", 10) == index.search("sq3 valve", 10)
