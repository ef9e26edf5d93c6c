"""Paired image–caption retrieval on generated shapes, with a fake and a tiny CLIP embedder."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType
from PIL import Image, ImageDraw

from multimodal_rag.errors import EvaluationError
from multimodal_rag.evaluation import CaptionPair, evaluate_paired, load_captions

from .support.embedders import HashEmbedding

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 20),
    "purple": (140, 40, 170),
}
SHAPES = ("square", "circle", "triangle")
TEMPLATES = ("a {c} {s}", "{s} painted {c}", "the {c} {s} on white")


class ShapeEmbedding(MultiModalEmbedding):
    """Reads colour and shape from pixels, and the same two words from text: a perfect model."""

    def _image_vector(self, path: ImageType) -> Embedding:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=float)
        ink = pixels.sum(axis=2) < 700
        ys, xs = np.nonzero(ink)
        mean = pixels[ink].mean(axis=0)
        colour = min(COLOURS, key=lambda c: float(np.sum((np.array(COLOURS[c]) - mean) ** 2)))
        # Share of the bounding box the shape fills: square 1, circle pi/4, triangle 1/2.
        fill = ink.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
        shape = min(SHAPES, key=lambda s: abs({"square": 1.0, "circle": 0.785}.get(s, 0.5) - fill))
        return self._one_hot(colour, shape)

    @staticmethod
    def _one_hot(colour: str | None, shape: str | None) -> Embedding:
        return [float(c == colour) for c in COLOURS] + [float(s == shape) for s in SHAPES]

    def _get_text_embedding(self, text: str) -> Embedding:
        words = text.split()
        colour = next((w for w in words if w in COLOURS), None)
        return self._one_hot(colour, next((w for w in words if w in SHAPES), None))

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._get_text_embedding(query)

    def _get_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._image_vector(img_file_path)

    async def _aget_image_embedding(self, img_file_path: ImageType) -> Embedding:
        return self._image_vector(img_file_path)


def _noise(seed_text: str, size: int) -> np.ndarray:
    seed = int(hashlib.md5(seed_text.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).normal(size=size)


class NoisyShapeEmbedding(ShapeEmbedding):
    """The perfect model plus strong deterministic noise, so that ranks spread out."""

    def _image_vector(self, path: ImageType) -> Embedding:
        clean = np.array(super()._image_vector(path))
        # Keyed by file name, not by the tmp path, which differs between runs.
        return [float(v) for v in clean + 0.7 * _noise(Path(str(path)).name, clean.size)]

    def _get_text_embedding(self, text: str) -> Embedding:
        clean = np.array(super()._get_text_embedding(text))
        return [float(v) for v in clean + 0.7 * _noise(text, clean.size)]


class ConstantEmbedding(ShapeEmbedding):
    """Every image and text gets the same vector: must score as badly as possible."""

    def _get_text_embedding(self, text: str) -> Embedding:
        return [1.0, 0.0]

    def _image_vector(self, path: ImageType) -> Embedding:
        return [1.0, 0.0]


def _draw(colour: str, shape: str, path: Path) -> None:
    image = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(image)
    box = (12, 12, 51, 51)
    fill = COLOURS[colour]
    if shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "circle":
        draw.ellipse(box, fill=fill)
    else:
        draw.polygon([(12, 51), (51, 51), (51, 12)], fill=fill)
    image.save(path)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CaptionPair]]:
    folder = tmp_path_factory.mktemp("shapes")
    pairs = []
    for colour in COLOURS:
        for shape in SHAPES:
            name = f"{colour}_{shape}.png"
            _draw(colour, shape, folder / name)
            pairs += [CaptionPair(name, t.format(c=colour, s=shape)) for t in TEMPLATES]
    return folder, pairs


def _unit(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    m = np.asarray(vectors, dtype=float)
    unit: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return unit


def _first_target_rank(scores: Sequence[float], targets: set[int]) -> int:
    # Best score first; on a tie the non-target goes first (pessimistic).
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], j in targets))
    return next(pos for pos, j in enumerate(order, start=1) if j in targets)


def _summary(ranks: list[int]) -> dict[str, float]:
    r = np.array(ranks)
    return {"r@1": float(np.mean(r <= 1)), "r@5": float(np.mean(r <= 5)),
            "r@10": float(np.mean(r <= 10)), "mrr": float(np.mean(1 / r))}  # fmt: skip


def _reference(
    folder: Path, pairs: list[CaptionPair], mm: MultiModalEmbedding, text: BaseEmbedding
) -> dict[str, dict[str, dict[str, float]]]:
    """Scores by plain loops over the embedders' vectors (no shared code with the module)."""
    names = sorted({p.image for p in pairs}, key=[p.image for p in pairs].index)
    # Batch calls as the module makes them: a real model's batched and single vectors
    # differ in the last float bits, which could swap near-tied ranks.
    images = _unit(mm.get_image_embedding_batch([str(folder / n) for n in names]))
    clip_texts = _unit(mm.get_text_embedding_batch([p.caption for p in pairs]))
    caps = _unit(text.get_text_embedding_batch([p.caption for p in pairs]))
    owner = [names.index(p.image) for p in pairs]
    t2i: dict[str, list[int]] = {"image": [], "caption": [], "concat": []}
    for i in range(len(pairs)):
        by_image = [float(clip_texts[i] @ images[j]) for j in range(len(names))]
        by_caption = []
        for j in range(len(names)):
            others = [caps[c] for c in range(len(pairs)) if owner[c] == j and c != i]
            mean = np.sum(others, axis=0)
            by_caption.append(float(caps[i] @ mean / np.linalg.norm(mean)))
        both = [(a + b) / 2 for a, b in zip(by_image, by_caption, strict=True)]
        t2i["image"].append(_first_target_rank(by_image, {owner[i]}))
        t2i["caption"].append(_first_target_rank(by_caption, {owner[i]}))
        t2i["concat"].append(_first_target_rank(both, {owner[i]}))
    i2t = [
        _first_target_rank(
            [float(images[j] @ clip_texts[c]) for c in range(len(pairs))],
            {c for c in range(len(pairs)) if owner[c] == j},
        )
        for j in range(len(names))
    ]
    out = {v: {"text_to_image": _summary(r)} for v, r in t2i.items()}
    out["image"]["image_to_text"] = _summary(i2t)
    return out


def _assert_matches(
    result: dict[str, object], reference: dict[str, dict[str, dict[str, float]]]
) -> None:
    scores = result["scores"]
    assert isinstance(scores, dict)
    assert {v: set(d) for v, d in scores.items()} == {v: set(d) for v, d in reference.items()}
    for variant, directions in reference.items():
        for direction, expected in directions.items():
            for key, value in expected.items():
                assert scores[variant][direction][key] == pytest.approx(value, abs=1e-9)


def test_a_perfect_embedder_finds_every_pair(shapes: tuple[Path, list[CaptionPair]]) -> None:
    folder, pairs = shapes
    result = evaluate_paired(folder, pairs, ShapeEmbedding())
    assert (result.images, result.captions) == (15, 45)
    assert set(result.scores) == {"image"}
    for direction in ("text_to_image", "image_to_text"):
        s = result.scores["image"][direction]
        assert s.recall == {1: 1.0, 5: 1.0, 10: 1.0}
        assert s.mrr == 1.0
    assert result.scores["image"]["text_to_image"].queries == 45
    assert result.scores["image"]["image_to_text"].queries == 15


def test_a_constant_embedder_scores_worst(shapes: tuple[Path, list[CaptionPair]]) -> None:
    folder, pairs = shapes
    s = evaluate_paired(folder, pairs, ConstantEmbedding()).scores["image"]
    assert s["text_to_image"].recall[1] == 0.0
    assert s["text_to_image"].mrr == pytest.approx(1 / 15)
    # Each image has 3 of the 45 captions: 42 non-targets tie ahead of them.
    assert s["image_to_text"].mrr == pytest.approx(1 / 43)


def test_all_variants_equal_a_loop_reference(shapes: tuple[Path, list[CaptionPair]]) -> None:
    folder, pairs = shapes
    mm, text = NoisyShapeEmbedding(), HashEmbedding(dim=12)
    result = evaluate_paired(folder, pairs, mm, text)
    _assert_matches(result.to_json(), _reference(folder, pairs, mm, text))
    # The noise and hash collisions spread the ranks, so the comparison above means something.
    for variant in ("image", "caption", "concat"):
        scores = result.scores[variant]["text_to_image"]
        assert 0.1 < scores.recall[1] < 0.9
        assert scores.recall[10] > scores.recall[1]
    assert set(result.scores["concat"]) == {"text_to_image"}


def test_a_caption_never_finds_itself(shapes: tuple[Path, list[CaptionPair]]) -> None:
    folder, _ = shapes
    # Each image gets two captions with no word in common: only leave-one-out makes it hard.
    names = sorted(p.name for p in folder.glob("*.png"))
    pairs = [CaptionPair(n, f"word{i}x") for i, n in enumerate(names)] + [
        CaptionPair(n, f"word{i}y") for i, n in enumerate(names)
    ]
    result = evaluate_paired(folder, pairs, ShapeEmbedding(), HashEmbedding(dim=4096))
    assert result.scores["caption"]["text_to_image"].recall[1] == 0.0


def test_markdown_and_json(shapes: tuple[Path, list[CaptionPair]]) -> None:
    folder, pairs = shapes
    result = evaluate_paired(folder, pairs, ShapeEmbedding(), HashEmbedding(dim=256))
    table = result.markdown_table().splitlines()
    assert table[0] == "| variant | direction | R@1 | R@5 | R@10 | MRR | queries |"
    assert [row.split("|")[1:3] for row in table[2:]] == [
        [" image ", " text→image "],
        [" image ", " image→text "],
        [" caption ", " text→image "],
        [" concat ", " text→image "],
    ]
    document = json.loads(json.dumps(result.to_json()))
    assert document["scores"]["image"]["image_to_text"] == {
        "r@1": 1.0, "r@5": 1.0, "r@10": 1.0, "mrr": 1.0, "queries": 15
    }  # fmt: skip


def test_captions_files_jsonl_and_tsv(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        '{"image": "a.png", "caption": "a cat"}\n\n{"image": "b.png", "caption": "x"}\n'
    )
    assert load_captions(jsonl) == [CaptionPair("a.png", "a cat"), CaptionPair("b.png", "x")]
    tsv = tmp_path / "c.tsv"
    tsv.write_text("image\tcaption\na.jpg#0\tA dog runs.\na.jpg#1\tA dog\twith a tab\n")
    assert load_captions(tsv) == [
        CaptionPair("a.jpg", "A dog runs."),
        CaptionPair("a.jpg", "A dog\twith a tab"),
    ]


@pytest.mark.parametrize(
    ("name", "text", "needle", "line"),
    [
        ("c.jsonl", '{"image": "a.png"}\n', "missing caption", 1),
        ("c.jsonl", '{"image": "a.png", "caption": "x"}\n{bad\n', "not valid JSON", 2),
        ("c.jsonl", "[1]\n", "expected a JSON object", 1),
        ("c.tsv", "a.png\tfine\nno tab here\n", "missing caption", 2),
        ("c.tsv", "\tcaption only\n", "missing image", 1),
        ("c.tsv", "\n\n", "holds no captions", None),
    ],
)
def test_bad_captions_files(
    tmp_path: Path, name: str, text: str, needle: str, line: int | None
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(EvaluationError, match=needle) as info:
        load_captions(path)
    assert info.value.line == line


def test_input_errors(shapes: tuple[Path, list[CaptionPair]], tmp_path: Path) -> None:
    folder, pairs = shapes
    with pytest.raises(EvaluationError, match="1 image\\(s\\) named in the captions are missing"):
        evaluate_paired(folder, [*pairs, CaptionPair("gone.png", "x")], ShapeEmbedding())
    with pytest.raises(EvaluationError, match="at least two images"):
        evaluate_paired(folder, pairs[:3], ShapeEmbedding())
    one_each = pairs[::3]
    assert evaluate_paired(folder, one_each, ShapeEmbedding()).captions == 15
    with pytest.raises(EvaluationError, match="at least two captions"):
        evaluate_paired(folder, one_each, ShapeEmbedding(), HashEmbedding())


def test_a_captions_file_path_is_accepted(
    shapes: tuple[Path, list[CaptionPair]], tmp_path: Path
) -> None:
    folder, pairs = shapes
    path = tmp_path / "captions.tsv"
    path.write_text("".join(f"{p.image}\t{p.caption}\n" for p in pairs))
    assert evaluate_paired(folder, path, ShapeEmbedding()).to_json() == (
        evaluate_paired(folder, pairs, ShapeEmbedding()).to_json()
    )


def test_tiny_clip_end_to_end(
    shapes: tuple[Path, list[CaptionPair]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from multimodal_rag.embedding import ClipEmbedder

    from .support.clip import make_tiny_clip

    folder, pairs = shapes
    clip = ClipEmbedder(str(make_tiny_clip(tmp_path_factory.mktemp("clip") / "m")))
    text = HashEmbedding(dim=12)
    result = evaluate_paired(folder, pairs, clip, text)
    # Random weights align nothing, but every number must still be the one the
    # embedder's own vectors give when ranked by plain loops.
    _assert_matches(result.to_json(), _reference(folder, pairs, clip, text))
    assert result.scores["image"]["text_to_image"].queries == 45
