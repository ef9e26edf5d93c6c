"""Evaluation questions: the JSONL format, its loader and the figure-label rule.

One JSON object per line (blank lines are skipped)::

    {"id": "d001", "query": "fruit battery wiring", "kind": "figure",
     "relevant": [{"doc": "en-eyes.pdf", "figure": "Figure 2.3"},
                  {"doc": "en-eyes.pdf", "page": 41}],
     "image": "queries/panel.jpg"}

``image`` is optional: the path of a query image, relative to the JSONL file.
``query`` may then be empty (an image-only query).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args

from ..errors import EvaluationError

__all__ = [
    "QUESTION_KINDS",
    "Question",
    "QuestionKind",
    "Target",
    "load_questions",
    "normalise_label",
]

QuestionKind = Literal["figure", "page", "keyword"]
QUESTION_KINDS: tuple[str, ...] = get_args(QuestionKind)

_QUESTION_KEYS = frozenset({"id", "query", "kind", "relevant", "image"})
_FIG_PREFIX = re.compile(r"^fig(?:ure)?(?![a-z])\.?\s*")


def normalise_label(label: str) -> str:
    """The comparison key of a figure label.

    Case-insensitive, NFKC, whitespace collapsed, ``"Fig."``/``"Fig"`` read as
    ``"Figure"``, trailing ``.`` or ``:`` dropped (captions print "Figure 2.3:").

    Example:
        >>> normalise_label("Fig.  2.3:") == normalise_label("figure 2.3")
        True
    """
    text = " ".join(unicodedata.normalize("NFKC", label).split()).lower().rstrip(".: ")
    match = _FIG_PREFIX.match(text)
    if match:
        text = "figure " + text[match.end() :]
    return text


@dataclass(frozen=True)
class Target:
    """One relevant item of a question: a page or a labelled figure of a document.

    Attributes:
        doc: Document file name, compared exactly with ``Hit.doc``.
        page: 1-based physical page, for a page target.
        figure: Figure label as written in the file, for a figure target.
    """

    doc: str
    page: int | None = None
    figure: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the target (two targets with the same key are duplicates)."""
        if self.figure is not None:
            return (self.doc, "figure:" + normalise_label(self.figure))
        return (self.doc, f"page:{self.page}")

    def to_json(self) -> dict[str, object]:
        """The target as written in the question file."""
        if self.figure is not None:
            return {"doc": self.doc, "figure": self.figure}
        return {"doc": self.doc, "page": self.page}


@dataclass(frozen=True)
class Question:
    """One evaluation question.

    Attributes:
        id: Unique id within the file.
        query: The query text ("" for an image-only query).
        kind: ``"figure"``, ``"page"`` or ``"keyword"``; metrics are reported per kind.
        relevant: The targets, in file order, without duplicates.
        image: Absolute path of the query image, when there is one.
    """

    id: str
    query: str
    kind: QuestionKind
    relevant: tuple[Target, ...]
    image: Path | None = None


def _target(raw: object, fail: _Fail) -> Target:
    if not isinstance(raw, dict):
        fail(f"each relevant target must be an object, got {raw!r}")
    keys = set(raw)
    if keys not in ({"doc", "page"}, {"doc", "figure"}):
        fail(
            f"a relevant target has 'doc' and exactly one of 'page' or 'figure', got keys "
            f"{sorted(keys)}"
        )
    doc = raw["doc"]
    if not isinstance(doc, str) or not doc.strip():
        fail(f"target 'doc' must be a non-empty file name, got {doc!r}")
    if "page" in raw:
        page = raw["page"]
        # bool is an int subclass; `true` as a page number is a typo, not page 1.
        if isinstance(page, bool) or not isinstance(page, int) or page < 1:
            fail(f"target 'page' must be a 1-based page number, got {page!r}")
        return Target(doc=doc, page=page)
    figure = raw["figure"]
    if not isinstance(figure, str) or not figure.strip():
        fail(f"target 'figure' must be a figure label such as 'Figure 2.3', got {figure!r}")
    return Target(doc=doc, figure=figure)


class _Fail:
    """Raises an EvaluationError for one line of one file."""

    def __init__(self, path: Path, line: int) -> None:
        self.path = path
        self.line = line

    def __call__(self, message: str) -> NoReturn:
        raise EvaluationError(message, path=self.path, line=self.line)


def _question(raw: Any, fail: _Fail, base: Path) -> Question:
    if not isinstance(raw, dict):
        fail(f"expected a JSON object, got {type(raw).__name__}")
    missing = [key for key in ("id", "query", "kind", "relevant") if key not in raw]
    if missing:
        fail(f"missing field(s) {', '.join(repr(m) for m in missing)}")
    unknown = sorted(set(raw) - _QUESTION_KEYS)
    if unknown:
        fail(f"unknown field(s) {unknown}; allowed: {sorted(_QUESTION_KEYS)}")
    qid, query, kind, relevant = raw["id"], raw["query"], raw["kind"], raw["relevant"]
    if not isinstance(qid, str) or not qid.strip():
        fail(f"'id' must be a non-empty string, got {qid!r}")
    if kind not in QUESTION_KINDS:
        fail(f"unknown kind {kind!r}; valid kinds: {', '.join(QUESTION_KINDS)}")
    if not isinstance(query, str):
        fail(f"'query' must be a string, got {query!r}")
    image: Path | None = None
    if raw.get("image") is not None:
        if not isinstance(raw["image"], str) or not raw["image"].strip():
            fail(f"'image' must be a path relative to the question file, got {raw['image']!r}")
        image = (base / raw["image"]).resolve()
        if not image.is_file():
            fail(f"query image {image} does not exist")
    if not query.strip() and image is None:
        fail("'query' is empty and there is no 'image'")
    if not isinstance(relevant, list) or not relevant:
        fail("'relevant' must be a non-empty list of {doc, page} or {doc, figure} targets")
    targets = [_target(t, fail) for t in relevant]
    seen: set[tuple[str, str]] = set()
    for target in targets:
        if target.key in seen:
            fail(f"duplicate relevant target {target.to_json()}")
        seen.add(target.key)
    return Question(id=qid, query=query, kind=kind, relevant=tuple(targets), image=image)


def load_questions(path: str | Path) -> list[Question]:
    """Read a JSONL question file.

    Args:
        path: The file; query image paths inside it are relative to its folder.

    Returns:
        The questions in file order.

    Raises:
        EvaluationError: The file cannot be read, or a line is not JSON, lacks a
            field, has an unknown kind, an empty or malformed ``relevant`` list, a
            missing query image, or repeats an id (``.line`` names the line).

    Example:
        >>> questions = load_questions("dev-qa.jsonl")  # doctest: +SKIP
        >>> questions[0].relevant[0]                     # doctest: +SKIP
        Target(doc='en-eyes.pdf', page=None, figure='Figure 1.1')
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluationError(f"cannot read the question file: {e}", path=path) from e
    questions: list[Question] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fail = _Fail(path, number)
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvaluationError(f"not valid JSON ({e.msg})", path=path, line=number) from e
        except RecursionError as e:  # [[[[... a hundred thousand deep
            raise EvaluationError(
                "JSON nested too deeply to be a question", path=path, line=number
            ) from e
        question = _question(raw, fail, path.parent)
        if question.id in first_line:
            fail(f"duplicate id {question.id!r} (first on line {first_line[question.id]})")
        first_line[question.id] = number
        questions.append(question)
    if not questions:
        raise EvaluationError("the question file holds no questions", path=path)
    return questions
