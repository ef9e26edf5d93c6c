"""The answer without an LLM: the few sentences of the top sources that answer the question.

The engine numbers its sources ``[1]…[k]`` as for an LLM. Without one,
:func:`extractive_answer` splits the best text sources into sentences, drops
the ones that are not prose (OCR of labels, tables of numbers, lone headings),
scores the rest against the question with the text embedder (cosine of the
query and sentence embeddings, plus a little for each of the question's words a
sentence contains; shared words alone when no embedder is given), and
keeps the best few, each followed by its ``[n]``. Figures among the top
sources are pointed to by label and caption (``See Figure 2.3 (…) [1].``).
Sentences keep their sources' ranking order, and each source's text order,
so the answer reads like a paragraph rather than a list of search hits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from llama_index.core.base.embeddings.base import BaseEmbedding

from .citations import source_body
from .records import Hit

__all__ = ["Sentence", "answer_sentences", "extractive_answer", "is_prose", "split_sentences"]

# How many of the best-ranked sources the sentences may come from: below that the
# fused ranking is usually about something else, and a sentence from there misleads.
TOP_SOURCES = 3
MAX_SENTENCES = 3
MAX_CHARS = 600
# A sentence this close below the best one still belongs in the answer.
_SCORE_MARGIN = 0.08
_DUPLICATE = 0.95
# Added to the embedding similarity per share of the question's content words a sentence
# contains: a small embedder (or a hashed test one) ranks near-synonyms well but can miss
# the sentence that literally names what was asked.
LEXICAL_WEIGHT = 0.2
# A sentence ends at . ! or ? (and a closing quote or bracket) before a capital or an
# opening quote; "0.5 mm", "e.g. copper" and "Fig. 3" stay whole. Paragraphs (blank lines),
# list items and headings on their own line also separate sentences.
_END = r"(?=[A-Z\"'(\[])"
_SENTENCE_END = re.compile(rf"(?<=[.!?])\s+{_END}|(?<=[.!?][\"')\]])\s+{_END}")
_BLOCK_END = re.compile(r"\n\s*\n|\n(?=\s*(?:[-•*]|\d+[.)])\s)")
_LIST_NUMBER = re.compile(r"\d{1,2}[.)]")
# "4 Electrical connection", "2.3 Lens Care", "Safety Instructions": short, unpunctuated.
_HEADING = re.compile(r"(\d+(\.\d+)*\.?\s+)?[A-Z][\w&/,' -]{0,60}")
_CAPTION_LEAD = re.compile(r"(fig\.?|figure)\s*\d", re.IGNORECASE)
_SMALL_WORDS = frozenset("a an and of or the to in on for with at by".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_TERM = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "the a an and or of to in on for with is are was were be by at as it its this that these "
    "those what which how why when where who does do can from into your you i my me".split()
)


def _is_heading(line: str) -> bool:
    line = line.strip()
    if not line or len(line.split()) > 8 or not _HEADING.fullmatch(line):
        return False
    if line[0].isdigit():
        return True
    words = [w for w in line.split() if w.lower() not in _SMALL_WORDS]
    return all(w[0].isupper() for w in words)


def _blocks(text: str) -> list[str]:
    out: list[str] = []
    for block in _BLOCK_END.split(text):
        lines = block.split("\n")
        current: list[str] = []
        for line in lines:
            if _is_heading(line):
                out += [" ".join(current), line] if current else [line]
                current = []
            else:
                current.append(line)
        if current:
            out.append(" ".join(current))
    return out


@dataclass(frozen=True)
class Sentence:
    """A sentence of a numbered source.

    Attributes:
        n: The source's citation number.
        position: Index of the sentence in its source's text.
        text: The sentence, whitespace collapsed.
        score: Similarity to the question (higher is better).
    """

    n: int
    position: int
    text: str
    score: float


def split_sentences(text: str) -> list[str]:
    """Split a passage into sentences (also at blank lines and list items).

    Example:
        >>> split_sentences("Turn it off. Then unplug it.\\n\\nStep 2 follows.")
        ['Turn it off.', 'Then unplug it.', 'Step 2 follows.']
    """
    out: list[str] = []
    for block in _blocks(text):
        for part in _SENTENCE_END.split(block):
            part = " ".join(part.split())
            if not part:
                continue
            if out and _LIST_NUMBER.fullmatch(out[-1]):
                # "1." of a list item split off its text: put them back together.
                out[-1] = f"{out[-1]} {part}"
            else:
                out.append(part)
    return out


def is_prose(sentence: str) -> bool:
    """Whether a sentence reads as prose: enough real words, mostly letters, not a heading.

    OCR of a drawing's labels ("A1 B2 ¦ 12V -- GND"), rows of numbers and lone
    headings fail; a manual's instructions pass.

    Example:
        >>> is_prose("Press the reset button for five seconds.")
        True
        >>> is_prose("12V GND A1 | B2 -- 0.5 mm")
        False
    """
    words = _WORD.findall(sentence)
    if len(words) < 4 or len(sentence) > 500:
        return False
    visible = [c for c in sentence if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters < 0.7 * len(visible):
        return False
    real = [w for w in words if len(w) >= 3 and (w.islower() or w.istitle())]
    # Labels of a drawing read as text: "MOTOR CAPACITOR FLOAT SWITCH L N PE".
    shouting = [w for w in words if w.isupper()]
    return len(real) >= 0.5 * len(words) and len(real) >= 3 and len(shouting) <= 0.25 * len(words)


def _terms(text: str) -> set[str]:
    return {w for w in _TERM.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


def _word_scores(query: str, sentences: Sequence[str]) -> list[float]:
    wanted = _terms(query)
    out = []
    for s in sentences:
        terms = _terms(s)
        out.append(len(terms & wanted) / math.sqrt(len(terms) or 1))
    return out


def _coverage(query: str, sentences: Sequence[str]) -> list[float]:
    """The share of the question's content words each sentence contains, in [0, 1]."""
    wanted = _terms(query)
    return [len(_terms(s) & wanted) / (len(wanted) or 1) for s in sentences]


def _normalised(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=False))


def _scores(
    query: str, texts: Sequence[str], embed_model: BaseEmbedding | None
) -> tuple[list[float], list[list[float]]]:
    """Each text's score against the query, and its unit embedding (none without a model)."""
    if embed_model is None:
        return _word_scores(query, texts), []
    q = _normalised(embed_model.get_query_embedding(query))
    vectors = [_normalised(v) for v in embed_model.get_text_embedding_batch(list(texts))]
    coverage = _coverage(query, texts)
    return [
        _dot(q, v) + LEXICAL_WEIGHT * c for v, c in zip(vectors, coverage, strict=True)
    ], vectors


def answer_sentences(
    query: str,
    hits: Sequence[Hit],
    embed_model: BaseEmbedding | None = None,
    *,
    top_sources: int = TOP_SOURCES,
    max_sentences: int = MAX_SENTENCES,
    max_chars: int = MAX_CHARS,
) -> list[Sentence]:
    """The sentences that answer ``query``, from the best ``top_sources`` text sources.

    Args:
        query: The question.
        hits: The numbered sources, best first (``hit.rank`` is the number).
        embed_model: Scores sentences by embedding similarity (plus
            :data:`LEXICAL_WEIGHT` times the share of the question's words they
            contain); ``None`` by shared words alone.
        top_sources: How many of the best text sources the sentences come from.
        max_sentences: Most sentences kept.
        max_chars: Most characters kept (the best sentence is always kept).

    Returns:
        The kept sentences in source order, then text order.
    """
    candidates: list[tuple[int, int, str]] = []
    for hit in [h for h in hits if h.kind == "text"][:top_sources]:
        for position, sentence in enumerate(split_sentences(source_body(hit))):
            # A caption printed in the text: the figure's own pointer says it better.
            if is_prose(sentence) and not _CAPTION_LEAD.match(sentence):
                candidates.append((hit.rank, position, sentence))
    if not candidates or not query.strip():
        return []
    texts = [c[2] for c in candidates]
    scores, vectors = _scores(query, texts, embed_model)
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i][:2]))
    best = scores[order[0]]
    if embed_model is None and best <= 0:
        return []
    kept: list[int] = []
    length = 0
    seen: set[str] = set()
    for i in order:
        if len(kept) == max_sentences or (kept and scores[i] < best - _SCORE_MARGIN):
            break
        key = texts[i].lower()
        duplicate = key in seen or (
            bool(vectors) and any(_dot(vectors[i], vectors[j]) > _DUPLICATE for j in kept)
        )
        if duplicate or (kept and length + len(texts[i]) > max_chars):
            continue
        kept.append(i)
        seen.add(key)
        length += len(texts[i]) + 1
    return [
        Sentence(n=candidates[i][0], position=candidates[i][1], text=texts[i], score=scores[i])
        for i in sorted(kept, key=lambda i: candidates[i][:2])
    ]


def _figures_to_show(
    query: str,
    hits: Sequence[Hit],
    sentences: Sequence[Sentence],
    embed_model: BaseEmbedding | None,
    top_sources: int,
) -> list[Hit]:
    """Figures among the top sources that the answer should point to.

    The best-ranked source always, when it is a figure (the retriever put it
    first); another when its label and caption score about as well as the
    answer's sentences; every one when no sentence answers.
    """
    figures = [h for h in hits[:top_sources] if h.kind == "figure"]
    if not figures or not sentences or not query.strip():
        return figures
    texts = [
        " ".join(p for p in (h.figure, h.caption or h.generated_caption) if p) for h in figures
    ]
    scores, _ = _scores(query, texts, embed_model)
    bar = max(s.score for s in sentences) - 2 * _SCORE_MARGIN
    return [h for h, score in zip(figures, scores, strict=True) if h is hits[0] or score >= bar]


def _figure_line(hit: Hit) -> str:
    label = hit.figure or "the figure"
    about = hit.caption or hit.generated_caption
    page = f" on p. {hit.page}" if hit.page > 0 else ""
    return f"See {label}{f' ({about})' if about else ''}{page} [{hit.rank}]."


def extractive_answer(
    query: str,
    hits: Sequence[Hit],
    embed_model: BaseEmbedding | None = None,
    *,
    top_sources: int = TOP_SOURCES,
) -> str:
    """A readable answer without an LLM: the best sentences, each cited, then the figures.

    Args:
        query: The question.
        hits: The numbered sources, best first.
        embed_model: Picks the sentences (see :func:`answer_sentences`).
        top_sources: Sources the sentences and figure pointers come from.

    Returns:
        One paragraph of cited sentences, then a line for each figure among the
        top sources that is first or about as relevant as those sentences. When
        nothing there reads as prose, the first source's opening.

    Example:
        >>> from multimodal_rag.records import Hit
        >>> hit = Hit(rank=1, kind="text", doc="m.pdf", page=3, figure=None, caption=None,
        ...           text="Safety first. The iris controls the size of the pupil.",
        ...           image=None, score=1.0)
        >>> extractive_answer("What controls the pupil size?", [hit])
        'The iris controls the size of the pupil [1].'
    """
    sentences = answer_sentences(query, hits, embed_model, top_sources=top_sources)
    paragraph = " ".join(_cite(s.text, s.n) for s in sentences)
    figures = [
        _figure_line(h) for h in _figures_to_show(query, hits, sentences, embed_model, top_sources)
    ]
    if not paragraph and hits and not figures:
        first = hits[0]
        opening = " ".join(source_body(first).split())[:300].rstrip()
        paragraph = _cite(opening or first.caption or first.doc, first.rank)
    return "\n\n".join(part for part in (paragraph, "\n".join(figures)) if part)


def _cite(sentence: str, n: int) -> str:
    text = sentence.rstrip()
    end = len(text)
    while end and text[end - 1] in ".!?:;":
        end -= 1
    return f"{text[:end]} [{n}]{text[end:] or '.'}"
