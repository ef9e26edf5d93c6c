"""Faults at the command line: exit 2, one line on stderr naming the file, one JSON document.

Each case here once ended in a traceback (exit 1), or stopped good documents
with a bad one, or printed two lines, or nothing on stdout with ``--json``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from multimodal_rag.cli import main

from .support.pdfs import make_manual_pdf
from .support.raw_pdfs import page_count_pdf
from .support.sandbox import run_mounted
from .support.scripts import run_mmrag

PY = shlex.quote(sys.executable)


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("mmrag: error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def manual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_manual_pdf(tmp_path_factory.mktemp("pdf") / "manual.pdf")


@pytest.fixture(scope="module")
def store(manual: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("store") / "store"
    done = run_mmrag(
        "ingest", str(manual), "--store", str(folder), "--profile", "offline", "--no-ocr"
    )
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize("workers", ["1", "2"])
def test_good_documents_are_committed_and_each_bad_one_is_one_line(
    manual: Path, tmp_path: Path, workers: str
) -> None:
    # With two workers documents finish in any order; the report and the error lines
    # still follow the order of the command line.
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"%PDF-1.4 nothing else")
    lying = tmp_path / "lying.pdf"
    lying.write_bytes(page_count_pdf(b"-1"))
    folder = str(tmp_path / "s")
    args = [str(garbage), str(manual), str(lying), "--store", folder, "--profile", "offline"]
    done = run_mmrag("ingest", *args, "--no-ocr", "--json", "--workers", workers)
    assert done.returncode == 2
    payload = json.loads(done.stdout)
    assert [d["doc"] for d in payload["documents"]] == ["garbage.pdf", "manual.pdf", "lying.pdf"]
    status = {d["doc"]: (d["status"], d["error"]) for d in payload["documents"]}
    assert status["manual.pdf"] == ("added", None)
    assert status["garbage.pdf"][0] == status["lying.pdf"][0] == "failed"
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("mmrag:")]
    assert errors == [f"mmrag: error: {status[n][1]}" for n in ("garbage.pdf", "lying.pdf")]
    assert str(lying) in errors[1] and "broken page tree" in errors[1]
    info = json.loads(run_mmrag("info", "--store", folder, "--json").stdout)
    assert [d["doc"] for d in info["documents"]] == ["manual.pdf"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "x", "--store", "{tmp}", "--top-k", "100000"], "--top-k 100000: must be"),
        (["eval", "{tmp}/deep.jsonl", "--store", "{tmp}"], "deep.jsonl:1: JSON nested too deeply"),
        (["info", "--chroma-url", "http://[::1"], "is not a valid URL"),
        (["figures", "{tmp}/lying.pdf"], "lying.pdf: broken page tree"),
    ],
)
def test_fault_is_one_line_and_one_json_document(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "\n")
    (tmp_path / "lying.pdf").write_bytes(page_count_pdf(b"2147483647"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(argv) == 2
    assert message in _one_error_line(capsys.readouterr().err)
    assert main([*argv, "--json"]) == 2
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]
    assert message in error["message"] and message in _one_error_line(err)


def test_json_failure_carries_the_error_context(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["figures", "/nonexistent/manual.pdf", "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "DocumentLoadError"
    assert error["path"] == "/nonexistent/manual.pdf"


def test_reader_closing_the_pipe_ends_quietly(store: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # `| head -c 0`: the reader is gone before the first byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "multimodal_rag.cli", "info", "--store", str(store), "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write)
    assert done.returncode == 141
    assert done.stderr == ""


def test_report_without_matplotlib_fails_before_writing(store: Path, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps(
            {
                "id": "q",
                "query": "panel",
                "kind": "page",
                "relevant": [{"doc": "manual.pdf", "page": 2}],
            }
        )
        + "\n"
    )
    report = tmp_path / "report"
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"  # an import of it now fails
        "from multimodal_rag.cli import main\n"
        f"sys.exit(main(['eval', {str(qa)!r}, '--store', {str(store)!r}, '--report', "
        f"{str(report)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert "matplotlib" in _one_error_line(done.stderr)
    assert not report.exists()


def test_read_only_store_is_described_and_queried_but_not_changed(
    store: Path, tmp_path: Path
) -> None:
    s = shlex.quote(str(store))
    cli = f"{PY} -m multimodal_rag.cli"
    done = run_mounted(
        f"mount --bind -o ro {s} {s} || exit 99\n"
        f"{cli} info --store {s} --json > info.json 2> info.err; echo $? > info.rc\n"
        f"{cli} query 'front panel' --store {s} --top-k 2 --json > q.json 2> q.err; "
        "echo $? > q.rc\n"
        f"{cli} remove manual.pdf --store {s} > rm.out 2> rm.err; echo $? > rm.rc\n"
        'for f in info.rc info.json q.rc q.json rm.rc rm.err; do echo "== $f"; cat $f; done\n',
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    parts = dict(p.split("\n", 1) for p in done.stdout.split("== ")[1:])
    assert parts["info.rc"].strip() == "0" and parts["q.rc"].strip() == "0"
    info = json.loads(parts["info.json"])
    assert info["store"] == str(store) and info["documents"][0]["doc"] == "manual.pdf"
    assert json.loads(parts["q.json"])["hits"][0]["page"] == 2
    assert parts["rm.rc"].strip() == "2"
    line = _one_error_line(parts["rm.err"])
    assert str(store) in line and "read-only" in line


def test_full_disk_keeps_the_store_readable_and_unchanged(
    store: Path, manual: Path, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    other = tmp_path / "other.pdf"
    make_manual_pdf(other, outline=False)
    d, src, cli = shlex.quote(str(disk)), shlex.quote(str(store)), f"{PY} -m multimodal_rag.cli"
    done = run_mounted(
        f"mount -t tmpfs -o size=16m tmpfs {d} || exit 99\n"
        f"cp -a {src} {d}/s && (dd if=/dev/zero of={d}/fill bs=64k 2>/dev/null; true)\n"
        f"{cli} info --store {d}/s --json > info.json 2> info.err; echo $? > info.rc\n"
        f"{cli} query 'front panel' --store {d}/s --json > q.json 2> q.err; echo $? > q.rc\n"
        f"{cli} ingest {shlex.quote(str(other))} --store {d}/s --json > in.json 2> in.err; "
        "echo $? > in.rc\n"
        f"{cli} figures {shlex.quote(str(manual))} --out {d}/figs > fig.out 2> fig.err; "
        "echo $? > fig.rc\n"
        f"rm {d}/fill; {cli} info --store {d}/s --json > after.json 2> after.err\n"
        "for f in info.rc info.json q.rc q.json in.rc in.err in.json fig.rc fig.err after.json; do "
        'echo "== $f"; cat $f; done\n',
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    parts = dict(p.split("\n", 1) for p in done.stdout.split("== ")[1:])
    assert parts["info.rc"].strip() == "0", parts
    assert [x["doc"] for x in json.loads(parts["info.json"])["documents"]] == ["manual.pdf"]
    assert parts["q.rc"].strip() == "0", parts
    assert json.loads(parts["q.json"])["hits"][0]["doc"] == "manual.pdf"
    assert parts["in.rc"].strip() == "2"
    assert f"{disk}/s" in _one_error_line(parts["in.err"])
    assert "error" in json.loads(parts["in.json"])
    assert parts["fig.rc"].strip() == "2"
    assert "No space left on device" in _one_error_line(parts["fig.err"])
    after = json.loads(parts["after.json"])
    assert [x["doc"] for x in after["documents"]] == ["manual.pdf"]
    assert after["text_chunks"] == json.loads(parts["info.json"])["text_chunks"]


def test_file_name_that_is_not_utf8_is_ingested_and_queried(manual: Path, tmp_path: Path) -> None:
    target = tmp_path / os.fsdecode(b"caf\xe9.pdf")
    try:
        target.write_bytes(manual.read_bytes())
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes UTF-8 names only")
    folder = str(tmp_path / "s")
    done = run_mmrag(
        "ingest", str(target), "--store", folder, "--profile", "offline", "--no-ocr", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert [d["doc"] for d in json.loads(done.stdout)["documents"]] == ["caf\\xe9.pdf"]
    hits = json.loads(run_mmrag("query", "front panel", "--store", folder, "--json").stdout)["hits"]
    assert hits[0]["doc"] == "caf\\xe9.pdf"
