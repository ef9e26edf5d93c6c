"""The question-file format: what loads, and the error each malformed line gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multimodal_rag.errors import EvaluationError
from multimodal_rag.evaluation import QUESTION_KINDS, Target, load_questions
from multimodal_rag.evaluation.questions import normalise_label

SHARED = Path(__file__).resolve().parents[2] / "shared"

GOOD = {
    "id": "q1",
    "query": "fruit battery wiring",
    "kind": "figure",
    "relevant": [{"doc": "a.pdf", "figure": "Figure 2.3"}, {"doc": "a.pdf", "page": 41}],
}


def _write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def _error(tmp_path: Path, *lines: object) -> EvaluationError:
    with pytest.raises(EvaluationError) as info:
        load_questions(_write(tmp_path, *lines))
    return info.value


def test_loads_questions_in_order_skipping_blank_lines(tmp_path: Path) -> None:
    second = {**GOOD, "id": "q2", "kind": "keyword", "relevant": [{"doc": "b.pdf", "page": 3}]}
    questions = load_questions(_write(tmp_path, "", GOOD, "   ", second, ""))
    assert [q.id for q in questions] == ["q1", "q2"]
    first = questions[0]
    assert first.query == "fruit battery wiring"
    assert first.kind == "figure"
    assert first.relevant == (Target("a.pdf", figure="Figure 2.3"), Target("a.pdf", page=41))
    assert first.image is None
    assert questions[1].relevant[0].to_json() == {"doc": "b.pdf", "page": 3}


def test_image_path_is_resolved_against_the_question_file(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "panel.png").write_bytes(b"not checked here")
    q = load_questions(_write(tmp_path, {**GOOD, "query": "", "image": "img/panel.png"}))[0]
    assert q.image == (tmp_path / "img" / "panel.png").resolve()
    assert q.query == ""


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "kind"}, "missing field(s) 'kind'"),
        ({"id": "x"}, "missing field(s) 'query', 'kind', 'relevant'"),
        ({**GOOD, "kind": "table"}, "valid kinds: figure, page, keyword"),
        ({**GOOD, "relevant": []}, "'relevant' must be a non-empty list"),
        ({**GOOD, "relevant": {"doc": "a.pdf", "page": 1}}, "'relevant' must be a non-empty"),
        ({**GOOD, "relevant": ["a.pdf"]}, "must be an object"),
        ({**GOOD, "relevant": [{"doc": "a.pdf"}]}, "exactly one of 'page' or 'figure'"),
        (
            {**GOOD, "relevant": [{"doc": "a.pdf", "page": 2, "figure": "Figure 1"}]},
            "exactly one of 'page' or 'figure'",
        ),
        ({**GOOD, "relevant": [{"doc": "a.pdf", "page": 0}]}, "1-based page number"),
        ({**GOOD, "relevant": [{"doc": "a.pdf", "page": "4"}]}, "1-based page number"),
        ({**GOOD, "relevant": [{"doc": "a.pdf", "page": True}]}, "1-based page number"),
        ({**GOOD, "relevant": [{"doc": "", "page": 4}]}, "'doc' must be a non-empty"),
        ({**GOOD, "relevant": [{"doc": "a.pdf", "figure": " "}]}, "figure label"),
        (
            {
                **GOOD,
                "relevant": [
                    {"doc": "a.pdf", "figure": "Fig. 2.3"},
                    {"doc": "a.pdf", "figure": "figure 2.3"},
                ],
            },
            "duplicate relevant target",
        ),
        ({**GOOD, "query": "  "}, "'query' is empty and there is no 'image'"),
        ({**GOOD, "query": 3}, "'query' must be a string"),
        ({**GOOD, "id": ""}, "'id' must be a non-empty string"),
        ({**GOOD, "image": "missing.png"}, "does not exist"),
        ({**GOOD, "notes": "x"}, "unknown field(s) ['notes']"),
    ],
)
def test_a_bad_line_is_an_error_naming_the_line(tmp_path: Path, line: object, needle: str) -> None:
    error = _error(tmp_path, GOOD, "", line)
    assert error.line == 3
    assert error.path == tmp_path / "qa.jsonl"
    assert needle in str(error)
    assert str(error).startswith(f"{tmp_path / 'qa.jsonl'}:3: ")


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    error = _error(tmp_path, GOOD, {**GOOD, "id": "q2"}, GOOD)
    assert error.line == 3
    assert "duplicate id 'q1' (first on line 1)" in str(error)


def test_unknown_kind_lists_the_valid_kinds(tmp_path: Path) -> None:
    message = str(_error(tmp_path, {**GOOD, "kind": "Figure"}))
    assert all(kind in message for kind in QUESTION_KINDS)


def test_missing_or_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="cannot read") as info:
        load_questions(tmp_path / "nope.jsonl")
    assert info.value.line is None
    with pytest.raises(EvaluationError, match="holds no questions"):
        load_questions(_write(tmp_path, "", ""))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Figure 2.3", "figure 2.3"),
        ("Fig. 2.3", "Figure 2.3"),
        ("FIG 2.3", "Figure 2.3"),
        ("Fig.2.3", "Figure  2.3"),
        ("Figure\u00a02.3:", "Figure 2.3"),
        ("  figure 2.3. ", "Figure 2.3"),
    ],
)
def test_equivalent_labels_normalise_alike(a: str, b: str) -> None:
    assert normalise_label(a) == normalise_label(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Figure 2.3", "Figure 2.30"), ("Figure 2.3", "Table 2.3"), ("Figures 2", "Figure 2")],
)
def test_different_labels_stay_different(a: str, b: str) -> None:
    assert normalise_label(a) != normalise_label(b)


def test_the_shared_dev_sets_load() -> None:
    path = SHARED / "eval" / "dev-qa.jsonl"
    if not path.is_file():
        pytest.skip(f"shared dev set not found at {path}")
    questions = load_questions(path)
    assert len(questions) == 51
    assert {q.kind for q in questions} == set(QUESTION_KINDS)
    assert all(q.relevant for q in questions)
