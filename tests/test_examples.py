"""The example notebooks run, and the chatbot answers over HTTP (and in a browser)."""

from __future__ import annotations

import html
import io
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.support.embedders import HashEmbedding
from tests.support.scripts import load_module

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The sample manual's raster figure ("Figure 1") is a pump body painted in this blue.
PUMP_BLUE = (30, 90, 170)


sample_manual = load_module("sample_manual", EXAMPLES / "sample_manual.py")
app = load_module("chatbot_app", EXAMPLES / "chatbot" / "app.py")


def _request(url: str, body: object | bytes | None = None) -> tuple[int, str, bytes]:
    """GET (or POST ``body`` as JSON) and return status, content type and bytes."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers["Content-Type"], e.read()


def _chat(base: str, message: str, session: str = "test") -> dict[str, Any]:
    status, kind, body = _request(base + "api/chat", {"message": message, "session": session})
    assert status == 200, body
    assert kind.startswith("application/json")
    reply: dict[str, Any] = json.loads(body)
    return reply


# -- the chatbot, in process, over a store with a bag-of-words embedder ----------------------


@pytest.fixture(scope="module")
def chat_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from multimodal_rag import MultimodalIndex

    work = tmp_path_factory.mktemp("chatbot")
    pdf = sample_manual.make_sample_manual(work / "pump.pdf")
    index = MultimodalIndex.open(
        work / "store", profile_name="offline", text_embedder=HashEmbedding()
    )
    report = index.ingest([pdf])
    assert [d.status for d in report.documents] == ["added"]
    server = app.ChatServer(("127.0.0.1", 0), app.ChatService(index))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_chatbot_answers_with_citations_and_serves_cited_figures(chat_url: str) -> None:
    reply = _chat(chat_url, "How are the motor, capacitor and float switch wired?")
    assert reply["mode"] == "extractive"
    assert reply["citations"], reply
    assert [c["n"] for c in reply["citations"]] == list(range(1, len(reply["citations"]) + 1))
    assert all(c["doc"] == "pump.pdf" and c["page"] >= 1 for c in reply["citations"])
    wiring = [c for c in reply["citations"] if c["figure"] == "Figure 2"]
    assert wiring, "the wiring diagram should be among the sources"
    assert wiring[0]["kind"] == "figure" and wiring[0]["page"] == 4
    assert "[1]" in reply["answer"]
    status, kind, png = _request(chat_url.rstrip("/") + wiring[0]["image_url"])
    assert status == 200 and kind == "image/png"
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as image:
        assert image.width > 100 and image.height > 50
    text_sources = [c for c in reply["citations"] if c["kind"] == "text"]
    assert all(c["image_url"] is None for c in text_sources)


def test_chatbot_follow_up_keeps_the_topic_per_session(chat_url: str) -> None:
    first = _chat(chat_url, "How do I clean the intake filter?", session="a")
    assert first["question"] == "How do I clean the intake filter?"
    follow = _chat(chat_url, "And before winter?", session="a")
    assert follow["question"] == "How do I clean the intake filter? And before winter?"
    assert 5 in {c["page"] for c in follow["citations"]}
    fresh = _chat(chat_url, "And before winter?", session="b")
    assert fresh["question"] == "And before winter?"
    status, _, _ = _request(chat_url + "api/reset", {"session": "a"})
    assert status == 200
    again = _chat(chat_url, "And before winter?", session="a")
    assert again["question"] == "And before winter?"


def test_chatbot_page_and_info(chat_url: str) -> None:
    status, kind, page = _request(chat_url)
    assert status == 200 and kind.startswith("text/html")
    assert b"/api/chat" in page and b"textContent" in page
    status, _, body = _request(chat_url + "api/info")
    info = json.loads(body)
    assert status == 200 and info["documents"][0]["doc"] == "pump.pdf"
    assert info["figures"] == 2


@pytest.mark.parametrize(
    "path",
    [
        "figures/../app.py",
        "figures/%2e%2e%2fapp.py",
        "figures/..%2F..%2Fetc%2Fpasswd",
        "figures/0123456789abcdef.png",
        "figures/",
        "nothing",
    ],
)
def test_chatbot_serves_no_other_files(chat_url: str, path: str) -> None:
    status, kind, body = _request(chat_url + path)
    assert status == 404
    assert json.loads(body) == {"error": "no such figure" if "figures" in path else "not found"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        ({"message": "   "}, "empty"),
        ({"message": 3}, "expected"),
        ({"message": "x" * 2001}, "longer than"),
        ({"message": "hi", "session": "../../etc"}, "session id"),
    ],
)
def test_chatbot_rejects_bad_requests(chat_url: str, body: object, message: str) -> None:
    status, _, reply = _request(chat_url + "api/chat", body)
    assert status == 400
    assert message in json.loads(reply)["error"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",  # CI containers run as root, where the sandbox cannot start
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1000,1400",
            # Virtual time lets the page's fetches and image loads finish before the dump.
            "--virtual-time-budget=20000",
            *args,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )


def test_chatbot_page_renders_answer_and_thumbnail_in_chromium(
    chat_url: str, tmp_path: Path
) -> None:
    question = "front view of the pump and its control panel"
    reply = _chat(chat_url, question, session="browser")  # a fresh conversation, as the page's
    assert any(c["figure"] == "Figure 1" for c in reply["citations"])
    url = chat_url + "?q=" + urllib.parse.quote(question)
    dom = _browser(tmp_path, "--dump-dom", url).stdout.decode("utf-8")
    assert html.escape(reply["answer"], quote=False) in dom
    assert "/tmp/" not in dom and str(tmp_path) not in dom  # no server paths on the page
    assert "pump.pdf p. 1 (Figure 1)" in dom
    assert 'data-loaded="true"' in dom, "a figure thumbnail did not load"
    shot = tmp_path / "chatbot.png"
    _browser(tmp_path, f"--screenshot={shot}", url)
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    blue = int((np.abs(pixels - np.array(PUMP_BLUE)).max(axis=2) <= 12).sum())
    # The thumbnail of Figure 1 is 180 px wide: its blue pump body covers thousands of pixels.
    assert blue > 2000, f"only {blue} pump-blue pixels: the thumbnail was not drawn"


# -- the chatbot as users start it, over a real offline-profile store ------------------------


@pytest.mark.slow
def test_chatbot_command_line_end_to_end(tmp_path: Path) -> None:
    from multimodal_rag import MultimodalIndex

    pdf = sample_manual.make_sample_manual(tmp_path / "pump.pdf")
    MultimodalIndex.open(tmp_path / "store", profile_name="offline").ingest([pdf])
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "chatbot" / "app.py"), "--store", str(tmp_path / "store")]
        + ["--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        line = ""
        while not line.startswith("Serving ") and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert line.startswith("Serving http://127.0.0.1:"), line
        base = line.split()[1]
        reply = _chat(base, "How do I clean the intake filter?")
        assert reply["citations"][0]["page"] == 5
        figures = [c for c in reply["citations"] if c["image_url"]]
        assert figures, reply
        status, kind, png = _request(base.rstrip("/") + figures[0]["image_url"])
        assert status == 200 and kind == "image/png" and png.startswith(PNG_SIGNATURE)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# -- notebooks ---------------------------------------------------------------------------------


def test_notebooks_are_committed_without_outputs() -> None:
    import nbformat

    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_figure_search.ipynb",
        "03_evaluation.ipynb",
        "04_chatbot.ipynb",
    ]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
        nbformat.validate(notebook)
        assert notebook.metadata["kernelspec"]["name"] == "python3"
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


def _run_notebook(path: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Execute a notebook in a fresh kernel; return all its text and markdown output."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MMRAG_WORK_DIR", str(work))
    for name in ("MMRAG_MANUAL", "MMRAG_CLIP_MODEL", "MMRAG_QUESTION"):
        monkeypatch.delenv(name, raising=False)
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    # The kernel starts in examples/ (as Jupyter would) to import the helper modules;
    # everything the notebook writes goes to MMRAG_WORK_DIR.
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()
    texts: list[str] = []
    images = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream" and output["name"] == "stdout":
                texts.append(output["text"])
            elif output["output_type"] in ("display_data", "execute_result"):
                images += "image/png" in output["data"]
                texts.append(output["data"].get("text/markdown", ""))
                texts.append(output["data"].get("text/plain", ""))
    return "\n".join(texts) + f"\n<{images} images>"


EXPECTED_OUTPUT = {
    # Some figure is among the sources; which one is not asked: neither figure is about the
    # question (the filter), and int8 and fp32 vectors order those two differently.
    "01_quickstart.ipynb": ["Sources:\n[1] aquaflow-200-manual.pdf p. 5", "(Figure "],
    "02_figure_search.ipynb": [
        "p.4 vector Figure 2",
        "TINY RANDOM CLIP",
        # The notebook asserts that the query image finds its own figure first.
        "- top figure: Figure",
    ],
    "03_evaluation.ipynb": ["| group | n | MRR@5 |", "| all | 7 |", "eval.png"],
    "04_chatbot.ipynb": [
        "STANDALONE QUESTION: How do I clean the intake filter? And what about winter?",
        "Cite every statement",
        "llm answer, 3 sources",
    ],
}


SHOWS_IMAGES = {"01_quickstart.ipynb", "02_figure_search.ipynb", "03_evaluation.ipynb"}


def _listing() -> list[str]:
    return sorted(str(p) for p in EXAMPLES.rglob("*") if "__pycache__" not in p.parts)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUT))
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _listing()
    output = _run_notebook(EXAMPLES / name, tmp_path, monkeypatch)
    for expected in EXPECTED_OUTPUT[name]:
        assert expected in output, f"{name}: {expected!r} not in the output"
    if name in SHOWS_IMAGES:
        assert "<0 images>" not in output, f"{name} displayed no image"
    assert _listing() == before, "the notebook wrote into examples/"
    assert os.listdir(tmp_path), "the notebook wrote nothing into MMRAG_WORK_DIR"
