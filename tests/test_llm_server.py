"""A real OpenAI client against a recording OpenAI-compatible server on 127.0.0.1:
figures go as ``image_url`` parts to vision models only, answers keep their citations,
and a failing LLM never costs the retrieval (engine, ``mmrag ask`` and the chatbot)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multimodal_rag.cli import main
from multimodal_rag.engine import CitedQueryEngine
from multimodal_rag.errors import LLMError
from multimodal_rag.llms import openai_compatible_llm

from .support.embedders import HashEmbedding
from .support.openai_server import image_url_parts, openai_server, prompt_text
from .support.pdfs import make_manual_pdf
from .support.scripts import load_module
from .test_engine import FakeRetriever, eye_nodes

ANSWER = "The iris sets the pupil's size [2]; the cross-section shows it [1]."
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- the engine with the real client -------------------------------------------------------


def test_vision_model_receives_figures_as_image_url_parts(tmp_path: Path) -> None:
    nodes = eye_nodes(tmp_path)
    with openai_server(ANSWER) as server:
        llm = openai_compatible_llm(server.url, "llava:13b")
        response = CitedQueryEngine(FakeRetriever(nodes), llm=llm).query("What does the iris do?")
    (request,) = server.requests
    assert server.paths == ["/v1/chat/completions"] and request["model"] == "llava:13b"
    (url,) = image_url_parts(request)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == (tmp_path / "fig23.png").read_bytes()
    assert "[1] en-eyes.pdf p.41 — Figure 2.3: Cross-section of the eye (image attached)" in (
        prompt_text(request)
    )
    assert str(response) == ANSWER
    meta = response.metadata or {}
    assert meta["mode"] == "multimodal" and meta["cited"] == [2, 1]
    assert [c["n"] for c in meta["citations"]] == [1, 2, 3]


def test_text_model_receives_no_image_parts(tmp_path: Path) -> None:
    with openai_server(ANSWER) as server:
        llm = openai_compatible_llm(server.url, "llama3.1:8b")
        response = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=llm).query("iris")
        forced = openai_compatible_llm(server.url, "llava:13b")
        CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=forced, multimodal=False).query(
            "iris"
        )
    assert [image_url_parts(r) for r in server.requests] == [[], []]
    # The figure still reaches the model as text: its header, caption and labels.
    assert "Figure 2.3: Cross-section of the eye\ncornea lens retina" in prompt_text(
        server.requests[0]
    )
    assert (response.metadata or {})["mode"] == "llm" and str(response) == ANSWER


def test_async_query_and_stream_go_through_the_async_client(tmp_path: Path) -> None:
    with openai_server(ANSWER) as server:
        llm = openai_compatible_llm(server.url, "qwen2.5vl:7b")
        engine = CitedQueryEngine(FakeRetriever(eye_nodes(tmp_path)), llm=llm)

        async def ask() -> tuple[str, str]:
            answered = await engine.aquery("iris")
            streamed = await engine.astream("iris")
            return str(answered), "".join([t async for t in streamed.async_response_gen()])

        answered, streamed = asyncio.run(ask())
    assert answered == ANSWER and streamed == ANSWER
    assert [len(image_url_parts(r)) for r in server.requests] == [1, 1]
    assert server.requests[1]["stream"] is True


def test_unreachable_and_failing_servers_raise_llm_error_with_the_sources(tmp_path: Path) -> None:
    nodes = eye_nodes(tmp_path)
    down = openai_compatible_llm(f"http://127.0.0.1:{_free_port()}/v1", "llava", timeout=5)
    with pytest.raises(LLMError, match="did not answer") as caught:
        CitedQueryEngine(FakeRetriever(nodes), llm=down).query("What controls the pupil?")
    assert "127.0.0.1" in str(caught.value) and "\n" not in str(caught.value)
    assert (caught.value.fallback.metadata or {})["mode"] == "extractive"
    with openai_server(ANSWER, status=500) as server:
        crashed = openai_compatible_llm(server.url, "llava", timeout=5)
        with pytest.raises(LLMError, match="model crashed"):
            CitedQueryEngine(FakeRetriever(nodes), llm=crashed).query("pupil")


# -- mmrag ask -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("ask")
    pdf = make_manual_pdf(work / "manual.pdf")
    path = str(work / "store")
    assert main(["ingest", str(pdf), "--store", path, "--profile", "offline", "--no-ocr"]) == 0
    return path


QUESTION = "Where are the connectors on the front panel?"


def _ask(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["ask", QUESTION, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_ask_with_a_vision_model_sends_the_figure_and_prints_the_cited_answer(
    store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    capsys.readouterr()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    answer = "They are on the front panel [1]."
    with openai_server(answer) as server:
        code, out, err = _ask(
            capsys, "--store", store, "--llm-url", server.url, "--llm-model", "llava", "--json"
        )
    assert code == 0, err
    payload = json.loads(out)
    assert payload["answer"] == answer and payload["mode"] == "multimodal"
    assert payload["cited"] == [1] and payload["error"] is None
    assert payload["citations"][0]["figure"] == "Figure 1.1"
    assert payload["llm"]["multimodal"] is True and "LLaVA" in payload["llm"]["reason"]
    (request,) = server.requests
    assert len(image_url_parts(request)) >= 1
    assert server.headers_seen[0]["Authorization"] == "Bearer sk-local-test"

    with openai_server(answer) as server:
        code, out, _ = _ask(
            capsys, "--store", store, "--llm-url", server.url, "--llm-model", "llava"
        )
    assert code == 0
    assert out == f"{answer}\n\nSources:\n[1] manual.pdf p. 2 (Figure 1.1)\n"


@pytest.mark.slow
@pytest.mark.parametrize(("model", "flag"), [("llama3.1:8b", None), ("llava", "--no-multimodal")])
def test_ask_with_a_text_model_sends_no_images(
    store: str, capsys: pytest.CaptureFixture[str], model: str, flag: str | None
) -> None:
    capsys.readouterr()
    with openai_server(ANSWER) as server:
        args = ["--store", store, "--llm-url", server.url, "--llm-model", model, "--json"]
        code, out, err = _ask(capsys, *args, *([flag] if flag else []))
    assert code == 0, err
    assert json.loads(out)["mode"] == "llm"
    assert image_url_parts(server.requests[0]) == []
    assert "Figure 1.1: Front panel of the widget" in prompt_text(server.requests[0])


@pytest.mark.slow
def test_ask_with_an_unreachable_llm_prints_the_passages_and_exits_2(
    store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    url = f"http://127.0.0.1:{_free_port()}/v1"
    code, out, err = _ask(capsys, "--store", store, "--llm-url", url, "--llm-model", "llava")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("mmrag: error: the LLM")
    assert url in err and "Traceback" not in err
    # Retrieval still happened: the extractive answer and its sources are on stdout.
    assert "[1]" in out and "Sources:\n[1] manual.pdf p. 2 (Figure 1.1)" in out

    with openai_server(ANSWER, status=500) as server:
        args = ["--store", store, "--llm-url", server.url, "--llm-model", "llava", "--json"]
        code, out, err = _ask(capsys, *args)
    assert code == 2 and "model crashed" in err
    payload = json.loads(out)
    assert payload["mode"] == "extractive" and "model crashed" in payload["error"]
    assert payload["citations"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--llm-url", "http://127.0.0.1:9/v1"], "--llm-model"),
        (["--llm-model", "llava"], "need --llm-url"),
        (["--multimodal"], "need --llm-url"),
        (["--llm-url", "localhost:11434", "--llm-model", "llava"], "http://HOST:PORT/v1"),
    ],
)
def test_ask_llm_options_are_checked_before_the_store_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = _ask(capsys, "--store", str(tmp_path / "none"), *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# -- the chatbot ---------------------------------------------------------------------------


def _chatbot_module() -> Any:
    return load_module("chatbot_app_llm", EXAMPLES / "chatbot" / "app.py")


@pytest.fixture(scope="module")
def chat_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from multimodal_rag import MultimodalIndex

    work = tmp_path_factory.mktemp("chatbot-llm")
    pdf = make_manual_pdf(work / "manual.pdf")
    index = MultimodalIndex.open(
        work / "store", profile_name="offline", text_embedder=HashEmbedding()
    )
    assert [d.status for d in index.ingest([pdf]).documents] == ["added"]
    yield index


def _no_server_paths(payload: object, root: Path) -> None:
    text = json.dumps(payload)
    assert (
        str(root) not in text
        and "/tmp" not in text
        and "figures/" not in text.replace('"/figures/', '"')
    )


def test_chatbot_sends_figures_to_a_vision_llm_and_hides_server_paths(chat_index: Any) -> None:
    app = _chatbot_module()
    answer = "The connectors are on the front panel [1]."
    with openai_server(answer) as server:
        service = app.ChatService(chat_index, app.make_llm("extractive", "llava", server.url))
        reply = service.chat("s1", "front panel connectors")
    assert reply["answer"] == answer and reply["mode"] == "multimodal" and reply["error"] is None
    assert len(image_url_parts(server.requests[0])) >= 1
    figure = next(c for c in reply["citations"] if c["figure"] == "Figure 1.1")
    assert figure["image_url"].startswith("/figures/") and service.figure(
        figure["image_url"].removeprefix("/figures/")
    )
    root = Path(chat_index.store.figures_dir).parent
    _no_server_paths(reply, root)
    _no_server_paths(service.info(), root)


def test_chatbot_answers_extractively_with_an_error_line_when_the_llm_fails(
    chat_index: Any,
) -> None:
    app = _chatbot_module()
    url = f"http://127.0.0.1:{_free_port()}/v1"
    service = app.ChatService(chat_index, app.make_llm("extractive", "llava", url, timeout=5))
    reply = service.chat("s2", "front panel connectors")
    assert reply["mode"] == "extractive" and reply["citations"]
    assert reply["error"] == "The language model did not answer; these are the best passages."
    assert "[1]" in reply["answer"] or "[2]" in reply["answer"]
    _no_server_paths(reply, Path(chat_index.store.figures_dir).parent)
