"""Fuzz campaign for the PDF loader: thousands of mutated PDFs, counts by outcome.

Generates ``--files`` mutated PDFs from the seeds of ``tests/support/fuzz.py``
(the test PDFs and page excerpts of the dev manuals), plus ``--whole`` mutants
of the two complete dev manuals, and loads each in a forked child with a
per-file timeout and an address-space limit. Every file must end in a clean
load (``ok``) or ``DocumentLoadError``; anything else (``crash``, ``memory``,
``timeout``, ``died``) is listed with its file, and the file is kept in
``--keep`` (default ``tests/data/fuzz/``, the regression files the test suite
loads on every run).

Prints one JSON object (counts by outcome and by mutation, peak RSS per file,
load times, the failures) on stdout and writes it to ``--out``; a one-line
summary goes to stderr.

Usage:
    python benchmarks/bench_fuzz.py [--files 5000] [--whole 60] [--seed 1]
        [--timeout 60] [--out benchmarks/results/fuzz.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import fuzz  # noqa: E402

DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"
MANUALS = ("en-eyes.pdf", "gpredict-user-manual.pdf")
# The kinds that keep a whole 130-page manual loading long enough to be worth it:
# most blind flips land in image data and change nothing.
_WHOLE_KINDS = ("truncate", "truncate_eof", "pagetree", "xref", "numbers", "delete", "bitflip")


def _whole_mutants(corpora: Path, count: int, seed: int) -> Iterator[fuzz.Mutant]:
    manuals = {n: (corpora / n).read_bytes() for n in MANUALS if (corpora / n).is_file()}
    if not manuals:
        return
    rng = random.Random(seed)
    for i in range(count):
        name = rng.choice(sorted(manuals))
        kind = _WHOLE_KINDS[i % len(_WHOLE_KINDS)]
        data = fuzz.MUTATORS[kind](manuals[name], rng)
        yield fuzz.Mutant(f"whole-{i:04d}-{Path(name).stem}-{kind}.pdf", name, (kind,), data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000, help="mutants of the small seeds")
    parser.add_argument("--whole", type=int, default=60, help="mutants of the whole manuals")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per file")
    parser.add_argument("--memory-gb", type=float, default=1.5, help="address space per file")
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/fuzz.json")
    parser.add_argument("--keep", type=Path, default=ROOT / "tests/data/fuzz")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with TemporaryDirectory(prefix="mmrag-fuzz-") as tmp:
        work = Path(tmp)
        pool = fuzz.seeds(work / "seeds", args.corpora if args.corpora.is_dir() else None)
        fuzz.prepare_child()
        memory = fuzz.address_space_limit(int(args.memory_gb * (1 << 30)))
        # Each child starts as a copy of this process: its peak RSS includes these pages.
        parent_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        target = work / "mutant.pdf"
        total = args.files + args.whole
        # Generated one at a time: held all at once, 5,000 mutants of megabyte excerpts
        # would make the parent (and so every forked child's RSS) gigabytes large.
        todo = itertools.chain(
            fuzz.mutants(pool, args.files, args.seed),
            _whole_mutants(args.corpora, args.whole, args.seed),
        )
        for n, mutant in enumerate(todo, 1):
            target.write_bytes(mutant.data)
            outcome = fuzz.load_outcome(target, timeout=args.timeout, mem_bytes=memory)
            row = fuzz.outcome_dict(mutant, outcome)
            rows.append(row)
            if outcome.outcome not in fuzz.ACCEPTABLE:
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / mutant.name).write_bytes(mutant.data)
                print(
                    f"bench_fuzz: {outcome.outcome}: {mutant.name}: {outcome.detail}",
                    file=sys.stderr,
                )
            if n % 500 == 0:
                print(f"bench_fuzz: {n}/{total} files", file=sys.stderr)
    summary = fuzz.summarise(rows)
    failures = [r for r in rows if r["outcome"] not in fuzz.ACCEPTABLE]
    result = {
        "command": "python benchmarks/bench_fuzz.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seeds": {name: len(data) for name, data in sorted(pool.items())},
        "timeout_s": args.timeout,
        "parent_rss_kb": parent_rss_kb,
        "memory_limit_gb_over_parent": args.memory_gb,
        "seconds": round(time.perf_counter() - started, 1),
        **summary,
        "slowest": sorted(rows, key=lambda r: -float(r["seconds"]))[:5],
        "largest_rss": sorted(rows, key=lambda r: -int(r["peak_rss_kb"]))[:5],
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    counts = summary["by_outcome"]
    print(
        f"bench_fuzz: {len(rows)} files in {result['seconds']} s: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())  # type: ignore[union-attr]
        + f"; peak RSS max {summary['peak_rss_kb']['max']} KB",  # type: ignore[index]
        file=sys.stderr,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
