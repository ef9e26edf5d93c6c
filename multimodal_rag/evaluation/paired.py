"""Paired image–caption retrieval (COCO / Flickr30k style) for an image embedder.

Input: a folder of images and a captions file, JSONL (``{"image": "a.jpg",
"caption": "..."}`` per line) or TSV (``a.jpg<TAB>caption`` per line; an
``image<TAB>caption`` header and Flickr's ``a.jpg#0`` caption numbers are
accepted). An image may have several captions (COCO and Flickr have five).

Directions:

* **text→image**: every caption queries all images; its own image is the one target.
* **image→text**: every image queries all captions; any of its captions is a
  target (the COCO protocol: Recall@K = some caption of the image in the top K).

Recall@K is then the share of queries whose first target ranks within K, and
MRR the mean of 1/rank of the first target over the full ranking. Ties count
against the target (a non-target scored equal to it ranks ahead), so an embedder
that gives every item the same vector scores no better than chance.

Variants, computed on L2-normalised vectors (dot product = cosine):

* ``image`` — the image embedder alone: image vectors against its text-encoder
  vectors of the captions (plain CLIP retrieval). Both directions.
* ``caption`` (needs a text embedder) — each image is represented by the text
  embedder's mean vector of its *other* captions (leave-one-out, so a caption
  never finds itself), queried with the caption's text-embedder vector. This is
  how a figure is found through the text printed around it. text→image only.
* ``concat`` (needs a text embedder) — image and caption side concatenated, each
  half normalised and weighted equally: the score is the mean of the ``image``
  and ``caption`` cosines. text→image only (an image query has no caption side).

The caption variants need at least two captions per image. Captions are
embedded as documents on both sides (``get_text_embedding_batch``), since
caption-to-caption similarity is symmetric.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..errors import EvaluationError

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding

__all__ = ["CaptionPair", "PairedResult", "RankScores", "evaluate_paired", "load_captions"]

logger = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float64]
RECALL_AT = (1, 5, 10)
_FLICKR_SUFFIX = re.compile(r"#\d+$")
_BLOCK = 1024  # queries scored at once; bounds memory at 1024 x gallery floats


@dataclass(frozen=True)
class CaptionPair:
    """One caption of one image (``image`` is a file name inside the image folder)."""

    image: str
    caption: str


@dataclass(frozen=True)
class RankScores:
    """Recall@1/5/10 and MRR of one direction of one variant, over ``queries`` queries."""

    recall: dict[int, float]
    mrr: float
    queries: int

    def to_json(self) -> dict[str, float | int]:
        """``{"r@1", "r@5", "r@10", "mrr", "queries"}``."""
        out: dict[str, float | int] = {f"r@{k}": v for k, v in self.recall.items()}
        out["mrr"] = self.mrr
        out["queries"] = self.queries
        return out


@dataclass(frozen=True)
class PairedResult:
    """Scores per variant (``image``, ``caption``, ``concat``) and direction.

    Attributes:
        images: Number of distinct images.
        captions: Number of captions.
        scores: ``scores[variant][direction]``, direction ``"text_to_image"`` or
            ``"image_to_text"``.
    """

    images: int
    captions: int
    scores: dict[str, dict[str, RankScores]]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict of counts and scores."""
        return {
            "images": self.images,
            "captions": self.captions,
            "scores": {
                variant: {d: s.to_json() for d, s in directions.items()}
                for variant, directions in self.scores.items()
            },
        }

    def markdown_table(self, *, digits: int = 3) -> str:
        """One row per (variant, direction): Recall@1/5/10, MRR and the number of queries."""
        cols = ["variant", "direction", *(f"R@{k}" for k in RECALL_AT), "MRR", "queries"]
        lines = ["| " + " | ".join(cols) + " |", "|---|---|" + "---:|" * (len(cols) - 2)]
        for variant, directions in self.scores.items():
            for direction, s in directions.items():
                values = [f"{s.recall[k]:.{digits}f}" for k in RECALL_AT] + [f"{s.mrr:.{digits}f}"]
                arrow = direction.replace("_to_", "→")
                lines.append(f"| {variant} | {arrow} | {' | '.join(values)} | {s.queries} |")
        return "\n".join(lines) + "\n"


def load_captions(path: str | Path) -> list[CaptionPair]:
    """Read a captions file: ``.jsonl`` objects ``{"image", "caption"}``, anything else TSV.

    Raises:
        EvaluationError: Unreadable file, bad line (``.line`` names it) or no captions.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluationError(f"cannot read the captions file: {e}", path=path) from e
    pairs: list[CaptionPair] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix.lower() == ".jsonl":
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvaluationError(f"not valid JSON ({e.msg})", path=path, line=number) from e
            if not isinstance(raw, dict):
                raise EvaluationError("expected a JSON object", path=path, line=number)
            image, caption = raw.get("image"), raw.get("caption")
        else:
            image, _, caption = line.partition("\t")
            if number == 1 and (image.strip().lower(), caption.strip().lower()) == (
                "image",
                "caption",
            ):
                continue
            image = _FLICKR_SUFFIX.sub("", image.strip())
        if not isinstance(image, str) or not image.strip():
            raise EvaluationError("missing image file name", path=path, line=number)
        if not isinstance(caption, str) or not caption.strip():
            raise EvaluationError("missing caption", path=path, line=number)
        pairs.append(CaptionPair(image=image.strip(), caption=caption.strip()))
    if not pairs:
        raise EvaluationError("the captions file holds no captions", path=path)
    return pairs


def _normalised(vectors: Sequence[Sequence[float]]) -> Matrix:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def _first_target_ranks(scores: Matrix, targets: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """1-based rank of each row's best-scored target; ties rank non-targets first."""
    best = np.where(targets, scores, -np.inf).max(axis=1, keepdims=True)
    ahead = (scores >= best) & ~targets
    ranks: npt.NDArray[np.int64] = 1 + ahead.sum(axis=1, dtype=np.int64)
    return ranks


def _rank_scores(ranks: npt.NDArray[np.int64]) -> RankScores:
    return RankScores(
        recall={k: float(np.mean(ranks <= k)) for k in RECALL_AT},
        mrr=float(np.mean(1.0 / ranks)),
        queries=int(ranks.size),
    )


def _row_norms(matrix: Matrix) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1)
    return np.where(norms == 0, 1.0, norms)


def _text_to_image_ranks(
    clip_texts: Matrix,
    images: Matrix,
    owner: npt.NDArray[np.int64],
    caption_vecs: Matrix | None,
) -> dict[str, npt.NDArray[np.int64]]:
    """Ranks of each caption's image, per variant, scored in blocks of captions."""
    ranks: dict[str, list[npt.NDArray[np.int64]]] = {"image": []}
    if caption_vecs is not None:
        ranks.update(caption=[], concat=[])
        sums = np.zeros((len(images), caption_vecs.shape[1]))
        np.add.at(sums, owner, caption_vecs)
        image_texts = sums / _row_norms(sums)[:, None]
    for start in range(0, len(owner), _BLOCK):
        rows = slice(start, start + _BLOCK)
        own = owner[rows]
        idx = np.arange(len(own))
        targets = np.zeros((len(own), len(images)), dtype=bool)
        targets[idx, own] = True
        by_image = clip_texts[rows] @ images.T
        ranks["image"].append(_first_target_ranks(by_image, targets))
        if caption_vecs is None:
            continue
        queries = caption_vecs[rows]
        by_caption = queries @ image_texts.T
        # The own image is represented without the query caption (leave-one-out).
        others = sums[own] - queries
        by_caption[idx, own] = np.einsum("ij,ij->i", queries, others) / _row_norms(others)
        ranks["caption"].append(_first_target_ranks(by_caption, targets))
        ranks["concat"].append(_first_target_ranks((by_image + by_caption) / 2, targets))
    return {variant: np.concatenate(parts) for variant, parts in ranks.items()}


def evaluate_paired(
    image_dir: str | Path,
    captions: str | Path | Sequence[CaptionPair],
    image_embedder: MultiModalEmbedding,
    text_embedder: BaseEmbedding | None = None,
    *,
    progress: bool = False,
) -> PairedResult:
    """Score image↔caption retrieval (see the module docstring for the exact definitions).

    Args:
        image_dir: Folder holding the images named in the captions.
        captions: A captions file (JSONL or TSV) or already-loaded pairs.
        image_embedder: Any LlamaIndex ``MultiModalEmbedding`` (e.g. ``ClipEmbedder``).
        text_embedder: A LlamaIndex text embedding; adds the ``caption`` and
            ``concat`` variants.
        progress: Show LlamaIndex's embedding progress bars (stderr).

    Returns:
        Recall@1/5/10 and MRR per variant and direction.

    Raises:
        EvaluationError: A missing image, fewer than two images, or (with a text
            embedder) an image with fewer than two captions.

    Example:
        >>> result = evaluate_paired("flickr/images", "flickr/captions.tsv", clip)  # doctest: +SKIP
        >>> result.scores["image"]["text_to_image"].recall[1]                      # doctest: +SKIP
        0.31
    """
    pairs = load_captions(captions) if isinstance(captions, (str, Path)) else list(captions)
    folder = Path(image_dir)
    names = list(dict.fromkeys(p.image for p in pairs))
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise EvaluationError(
            f"{len(missing)} image(s) named in the captions are missing, e.g. {missing[:3]}",
            path=folder,
        )
    if len(names) < 2:
        raise EvaluationError("paired retrieval needs at least two images", path=folder)
    index = {name: i for i, name in enumerate(names)}
    owner = np.array([index[p.image] for p in pairs], dtype=np.int64)
    texts = [p.caption for p in pairs]

    caption_vecs: Matrix | None = None
    if text_embedder is not None:
        per_image = np.bincount(owner, minlength=len(names))
        if per_image.min() < 2:
            short = [names[i] for i in np.flatnonzero(per_image < 2)[:3]]
            raise EvaluationError(
                "the caption variants leave each query caption out of its image's text, so "
                f"every image needs at least two captions; e.g. {short} have one",
                path=folder,
            )
        caption_vecs = _normalised(
            text_embedder.get_text_embedding_batch(texts, show_progress=progress)
        )
    images = _normalised(
        image_embedder.get_image_embedding_batch(
            [str(folder / n) for n in names], show_progress=progress
        )
    )
    clip_texts = _normalised(image_embedder.get_text_embedding_batch(texts, show_progress=progress))
    i2t = []
    for start in range(0, len(names), _BLOCK):
        block = images[start : start + _BLOCK] @ clip_texts.T
        targets = owner[None, :] == np.arange(start, start + len(block))[:, None]
        i2t.append(_first_target_ranks(block, targets))
    t2i = _text_to_image_ranks(clip_texts, images, owner, caption_vecs)
    scores = {variant: {"text_to_image": _rank_scores(ranks)} for variant, ranks in t2i.items()}
    scores["image"]["image_to_text"] = _rank_scores(np.concatenate(i2t))
    logger.info("paired evaluation: %d images, %d captions", len(names), len(pairs))
    return PairedResult(images=len(names), captions=len(pairs), scores=scores)
