"""Fuzzing the PDF loader: every mutated file ends in a clean load or DocumentLoadError.

320 files from a fixed seed (see ``tests/support/fuzz.py`` for the mutations),
each loaded in a forked child with a 30 s timeout and a 1.5 GB address-space
limit above the parent's: a hang, a crash, a MemoryError or a signal fails the
test, naming the file. Files that once failed are kept in ``tests/data/fuzz/``
and loaded on every run. The larger campaign is ``benchmarks/bench_fuzz.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import fuzz

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
REGRESSIONS = sorted((ROOT / "tests" / "data" / "fuzz").glob("*.pdf"))
FILES = 320
SEED = 20261201
TIMEOUT_S = 30.0
EXTRA_MEMORY = 1536 << 20


@pytest.fixture(scope="module")
def limits() -> int:
    fuzz.prepare_child()
    return fuzz.address_space_limit(EXTRA_MEMORY)


@pytest.mark.slow
def test_mutated_pdfs_end_in_a_clean_load_or_a_documented_error(
    tmp_path: Path, limits: int
) -> None:
    pool = fuzz.seeds(tmp_path / "seeds", CORPORA if CORPORA.is_dir() else None)
    rows = []
    target = tmp_path / "mutant.pdf"
    for mutant in fuzz.mutants(pool, FILES, SEED):
        target.write_bytes(mutant.data)
        outcome = fuzz.load_outcome(target, timeout=TIMEOUT_S, mem_bytes=limits)
        rows.append(fuzz.outcome_dict(mutant, outcome))
        if outcome.outcome not in fuzz.ACCEPTABLE:
            (tmp_path / mutant.name).write_bytes(mutant.data)  # kept for a regression file
    summary = fuzz.summarise(rows)
    bad = [r for r in rows if r["outcome"] not in fuzz.ACCEPTABLE]
    assert not bad, f"{len(bad)} files ({tmp_path}): {bad[:5]}"
    counts = summary["by_outcome"]
    assert isinstance(counts, dict)
    # The mutations must reach both ends: files that still load, and files refused.
    assert counts["ok"] > FILES // 10 and counts["DocumentLoadError"] > FILES // 10, summary


@pytest.mark.parametrize("pdf", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_inputs_that_once_failed_now_load_or_fail_cleanly(pdf: Path, limits: int) -> None:
    outcome = fuzz.load_outcome(pdf, timeout=TIMEOUT_S, mem_bytes=limits)
    assert outcome.outcome in fuzz.ACCEPTABLE, outcome
