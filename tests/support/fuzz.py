"""A seeded PDF fuzzer for the loader: mutated files, each loaded in a forked child.

Seeds are the test manual (:mod:`.pdfs`), the hand-made broken PDFs
(:mod:`.raw_pdfs`) and page excerpts of the development manuals (real fonts,
images and drawings; written plain, and with object and cross-reference
streams). :func:`mutants` derives files from them with one or two of:

==============  ============================================================
``bitflip``     1-32 random bits flipped
``bytes``       1-16 bytes set to PDF delimiters, digits, 0x00 or 0xFF
``delete``      a chunk of 1 B-4 KB removed
``duplicate``   a chunk of 1 B-4 KB copied to another place
``truncate``    cut at a random place (no ``%%EOF``: "truncated" to the loader)
``truncate_eof`` cut at a random place, ``%%EOF`` appended (MuPDF repairs it)
``pagetree``    ``/Count`` set to -1, 0, 2^31-1..., ``/Kids`` pointing at the
                root or at nothing, ``/Parent`` pointing anywhere, Page <-> Pages
``xref``        ``startxref`` moved, table offsets rewritten, ``/Prev`` looping,
                ``/Size`` wrong, the ``xref`` keyword broken
``numbers``     ``/Width``, ``/Height``, ``/Length``, ``/BitsPerComponent``,
                ``/N``, ``/First`` ... set to extreme values
``splice``      the head of one seed joined to the tail of another
==============  ============================================================

:func:`load_outcome` loads one file in a forked child (after the parent has
imported everything), with a wall-clock timeout and an address-space limit,
and reports its outcome: ``ok`` (a clean load), ``DocumentLoadError`` (the
documented error), ``crash`` (any other exception), ``memory`` (MemoryError
under the limit), ``timeout``, or ``died`` (killed by a signal), plus the
child's peak RSS.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import select
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from . import raw_pdfs
from .pdfs import make_manual_pdf

OUTCOMES = ("ok", "DocumentLoadError", "crash", "memory", "timeout", "died")
"""Everything a load can end in; only the first two are acceptable."""

ACCEPTABLE = frozenset(OUTCOMES[:2])

# Pages of the dev manuals with raster figures, vector drawings, or both.
EXCERPTS = {
    "en-eyes.pdf": [(0, 1), (21, 22), (41, 42), (45, 47)],
    "gpredict-user-manual.pdf": [(0, 1), (8, 9), (22, 23), (47, 49)],
}


@dataclass(frozen=True)
class Outcome:
    """How one load ended."""

    outcome: str
    seconds: float
    peak_rss_kb: int
    detail: str = ""


# ------------------------------------------------------------------ seeds


def seeds(work: Path, corpora: Path | None) -> dict[str, bytes]:
    """Seed PDFs by name: test PDFs, and excerpts of the dev manuals when ``corpora`` has them."""
    import pymupdf

    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, bytes] = {
        "manual.pdf": make_manual_pdf(work / "manual.pdf").read_bytes(),
        "manual-no-outline.pdf": make_manual_pdf(
            work / "manual-no-outline.pdf", outline=False
        ).read_bytes(),
        "plain.pdf": raw_pdfs.one_page_pdf(),
        "cycle.pdf": raw_pdfs.page_tree_cycle_pdf(),
        "bomb.pdf": raw_pdfs.pixel_bomb_pdf(9000, 9000),  # over the default cap
    }
    with pymupdf.open(work / "manual.pdf") as doc:
        out["manual-objstm.pdf"] = doc.tobytes(garbage=1, deflate=True, use_objstms=1)
    for name, ranges in EXCERPTS.items():
        source = corpora / name if corpora else None
        if source is None or not source.is_file():
            continue
        with pymupdf.open(source) as src:
            for first, last in ranges:
                with pymupdf.open() as part:
                    part.insert_pdf(src, from_page=first, to_page=last)
                    stem = f"{Path(name).stem}-p{first + 1}"
                    out[f"{stem}.pdf"] = part.tobytes(garbage=3, deflate=True)
                    out[f"{stem}-objstm.pdf"] = part.tobytes(garbage=3, deflate=True, use_objstms=1)
    return out


# ------------------------------------------------------------------ mutations

Mutator = Callable[[bytes, random.Random], bytes]
_INTERESTING = b"()<>[]{}/%\\ \n\r0123456789\x00\xff"
_COUNTS = [b"-1", b"0", b"1", b"2147483647", b"4294967296", b"99999999999", b"null", b"1.5"]
_BIG = [b"0", b"-1", b"1", b"65535", b"2147483647", b"99999999", b"4294967295", b"1e9"]
_NUMBER_KEYS = rb"/(Width|Height|Length|BitsPerComponent|N|First|Size|Columns|Predictor|Colors)"


def _span(data: bytes, rng: random.Random) -> tuple[int, int]:
    start = rng.randrange(len(data))
    return start, min(len(data), start + rng.randint(1, 4096))


def _bitflip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        b[rng.randrange(len(b))] = rng.choice(_INTERESTING)
    return bytes(b)


def _delete(data: bytes, rng: random.Random) -> bytes:
    start, end = _span(data, rng)
    return data[:start] + data[end:]


def _duplicate(data: bytes, rng: random.Random) -> bytes:
    start, end = _span(data, rng)
    at = rng.randrange(len(data))
    return data[:at] + data[start:end] + data[at:]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(16, max(17, len(data)))]


def _truncate_eof(data: bytes, rng: random.Random) -> bytes:
    return _truncate(data, rng) + b"\n%%EOF\n"


def _sub_one(
    data: bytes, pattern: bytes, rng: random.Random, repl: Callable[[re.Match[bytes]], bytes]
) -> bytes | None:
    found = list(re.finditer(pattern, data))
    if not found:
        return None
    m = rng.choice(found)
    return data[: m.start()] + repl(m) + data[m.end() :]


def _object_numbers(data: bytes) -> list[bytes]:
    return re.findall(rb"(?m)^(\d+) 0 obj", data) or [b"1"]


def _pagetree(data: bytes, rng: random.Random) -> bytes:
    objs = _object_numbers(data)
    choices: list[tuple[bytes, Callable[[re.Match[bytes]], bytes]]] = [
        (rb"/Count\s+-?\d+", lambda m: b"/Count " + rng.choice(_COUNTS)),
        (rb"/Kids\s*\[[^\]]*\]", lambda m: b"/Kids [" + rng.choice(objs) + b" 0 R]"),
        (rb"/Kids\s*\[[^\]]*\]", lambda m: rng.choice([b"/Kids []", b"/Kids null", b""])),
        (rb"/Parent\s+\d+\s+0\s+R", lambda m: b"/Parent " + rng.choice(objs) + b" 0 R"),
        (rb"/Type\s*/Pages\b", lambda m: b"/Type /Page"),
        (rb"/Type\s*/Page\b(?!s)", lambda m: b"/Type /Pages"),
        (rb"/Pages\s+\d+\s+0\s+R", lambda m: b"/Pages " + rng.choice(objs) + b" 0 R"),
    ]
    for _ in range(4):
        pattern, repl = rng.choice(choices)
        out = _sub_one(data, pattern, rng, repl)
        if out is not None:
            return out
    return _bitflip(data, rng)


def _xref(data: bytes, rng: random.Random) -> bytes:
    choices: list[tuple[bytes, Callable[[re.Match[bytes]], bytes]]] = [
        (
            rb"startxref\s+\d+",
            lambda m: (
                b"startxref\n"
                + rng.choice(
                    [b"0", b"1", b"-5", b"999999999", str(rng.randrange(len(data))).encode()]
                )
            ),
        ),
        (rb"(?m)^\d{10} \d{5} [nf]", lambda m: b"%010d 00000 n" % rng.randrange(len(data) * 2)),
        (rb"(?m)^xref\b", lambda m: rng.choice([b"xreg", b"", b"xref 7"])),
        (rb"/Size\s+\d+", lambda m: b"/Size " + rng.choice(_BIG)),
        (rb"/Prev\s+\d+", lambda m: b"/Prev " + str(rng.randrange(len(data))).encode()),
        (rb"/W\s*\[[^\]]*\]", lambda m: rng.choice([b"/W [1 2]", b"/W [0 0 0]", b"/W [9 9 9]"])),
        (
            rb"/Root\s+\d+\s+0\s+R",
            lambda m: b"/Root " + rng.choice(_object_numbers(data)) + b" 0 R",
        ),
    ]
    for _ in range(4):
        pattern, repl = rng.choice(choices)
        out = _sub_one(data, pattern, rng, repl)
        if out is not None:
            return out
    return _bytes(data, rng)


def _numbers(data: bytes, rng: random.Random) -> bytes:
    out = _sub_one(
        data,
        _NUMBER_KEYS + rb"\s+-?\d+",
        rng,
        lambda m: b"/" + m.group(1) + b" " + rng.choice(_BIG),
    )
    return out if out is not None else _bitflip(data, rng)


MUTATORS: dict[str, Mutator] = {
    "bitflip": _bitflip,
    "bytes": _bytes,
    "delete": _delete,
    "duplicate": _duplicate,
    "truncate": _truncate,
    "truncate_eof": _truncate_eof,
    "pagetree": _pagetree,
    "xref": _xref,
    "numbers": _numbers,
}
# Structure-aware mutations find more distinct failures than blind ones; weigh them up.
_WEIGHTS = {"pagetree": 3, "xref": 3, "numbers": 2, "truncate_eof": 2}


@dataclass(frozen=True)
class Mutant:
    """One generated file: which seed, which mutations, and the bytes."""

    name: str
    seed: str
    kinds: tuple[str, ...]
    data: bytes


def mutants(pool: dict[str, bytes], count: int, seed: int) -> Iterator[Mutant]:
    """``count`` mutated PDFs, the same ones for the same ``pool`` and ``seed``."""
    rng = random.Random(seed)
    names = sorted(pool)
    kinds = [*MUTATORS, "splice"]
    weights = [_WEIGHTS.get(k, 1) for k in kinds]
    for i in range(count):
        origin = rng.choice(names)
        data = pool[origin]
        applied: list[str] = []
        for _ in range(1 if rng.random() < 0.7 else 2):
            kind = rng.choices(kinds, weights)[0]
            if kind == "splice":
                other = pool[rng.choice(names)]
                data = data[: rng.randrange(1, len(data))] + other[rng.randrange(len(other)) :]
            else:
                data = MUTATORS[kind](data, rng) or data[:1]
            applied.append(kind)
        yield Mutant(
            f"{i:05d}-{Path(origin).stem}-{'+'.join(applied)}.pdf", origin, tuple(applied), data
        )


# ------------------------------------------------------------------ loading in a child


def _child(path: Path, write_fd: int, mem_bytes: int) -> None:
    from multimodal_rag.config import LoaderConfig
    from multimodal_rag.errors import DocumentLoadError
    from multimodal_rag.loading.pdf import load_pdf

    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    started = time.perf_counter()
    try:
        loaded = load_pdf(path, LoaderConfig(ocr=False))
        result = (
            "ok",
            f"{loaded.pages} pages, {len(loaded.chunks)} chunks, {len(loaded.figures)} figures",
        )
    except DocumentLoadError as e:
        result = ("DocumentLoadError", str(e).splitlines()[0][:300])
    except MemoryError:
        result = ("memory", "MemoryError")
    except BaseException as e:  # noqa: BLE001 - a fuzzer records every way a load can end
        where = traceback.extract_tb(e.__traceback__)[-1]
        result = (
            "crash",
            f"{type(e).__module__}.{type(e).__name__}: {str(e)[:200]} "
            f"at {Path(where.filename).name}:{where.lineno}",
        )
    seconds = time.perf_counter() - started
    os.write(write_fd, json.dumps([*result, seconds]).encode())
    os.close(write_fd)


def prepare_child() -> None:
    """Import everything a load needs once, in the parent, so each child starts warm."""
    from multimodal_rag.loading import import_pymupdf

    import_pymupdf()
    import multimodal_rag.loading.figures  # noqa: F401
    import multimodal_rag.loading.pdf  # noqa: F401


def address_space_limit(extra_bytes: int) -> int:
    """The parent's virtual size plus ``extra_bytes``: the child's RLIMIT_AS."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE") + extra_bytes


def load_outcome(path: Path, *, timeout: float, mem_bytes: int) -> Outcome:
    """Load ``path`` in a forked child; see the module docstring for the outcomes."""
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            _child(path, write_fd, mem_bytes)
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = started + timeout
    timed_out = False
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(read_fd)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    rss = int(usage.ru_maxrss)
    if timed_out:
        return Outcome("timeout", seconds, rss, f"over {timeout} s")
    if os.WIFSIGNALED(status):
        return Outcome("died", seconds, rss, f"signal {os.WTERMSIG(status)}")
    try:
        outcome, detail, load_seconds = json.loads(b"".join(chunks))
    except ValueError:
        return Outcome("died", seconds, rss, f"exit status {status}, no result")
    return Outcome(outcome, round(load_seconds, 4), rss, detail)


def outcome_dict(mutant: Mutant, outcome: Outcome) -> dict[str, object]:
    """One JSON-ready line of a campaign log."""
    return {
        "file": mutant.name,
        "seed": mutant.seed,
        "kinds": list(mutant.kinds),
        **asdict(outcome),
    }


def summarise(rows: Sequence[dict[str, object]]) -> dict[str, object]:
    """Counts by outcome, by mutation kind and outcome, and peak RSS statistics."""
    by_outcome = {k: 0 for k in OUTCOMES}
    by_kind: dict[str, dict[str, int]] = {}
    for row in rows:
        by_outcome[str(row["outcome"])] += 1
        for kind in row["kinds"]:  # type: ignore[attr-defined]
            slot = by_kind.setdefault(kind, {})
            slot[str(row["outcome"])] = slot.get(str(row["outcome"]), 0) + 1
    rss = sorted(int(row["peak_rss_kb"]) for row in rows)  # type: ignore[call-overload]
    secs = sorted(float(row["seconds"]) for row in rows)  # type: ignore[arg-type]

    def q(values: Sequence[float], f: float) -> float:
        return values[min(len(values) - 1, int(f * len(values)))] if values else 0.0

    return {
        "files": len(rows),
        "by_outcome": by_outcome,
        "by_mutation": dict(sorted(by_kind.items())),
        "peak_rss_kb": {"median": q(rss, 0.5), "p99": q(rss, 0.99), "max": q(rss, 1.0)},
        "load_seconds": {"median": q(secs, 0.5), "p99": q(secs, 0.99), "max": q(secs, 1.0)},
    }
