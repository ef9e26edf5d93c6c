"""The chatbot example under misbehaving clients: stalled bodies, bad JSON, hang-ups.

Each once held a server thread forever or printed a traceback into the log.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.embedders import HashEmbedding
from tests.support.scripts import load_module

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


app = load_module("chatbot_app_faults", EXAMPLES / "chatbot" / "app.py")
sample_manual = load_module("sample_manual_faults", EXAMPLES / "sample_manual.py")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    from multimodal_rag import MultimodalIndex

    work = tmp_path_factory.mktemp("chatbot_faults")
    index = MultimodalIndex.open(
        work / "store", profile_name="offline", text_embedder=HashEmbedding()
    )
    index.ingest([sample_manual.make_sample_manual(work / "pump.pdf")])
    srv = app.ChatServer(("127.0.0.1", 0), app.ChatService(index), read_timeout=0.5)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.server_address[:2]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def _exchange(address: tuple[str, int], request: bytes, *, wait: float = 10.0) -> bytes:
    with socket.create_connection(address, timeout=wait) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _post(body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    head = f"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n"
    return head.encode() + b"Content-Type: application/json\r\n\r\n" + body


def test_partial_body_times_out_with_408_and_frees_the_thread(
    server: tuple[str, int], capfd: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    reply = _exchange(server, _post(b'{"message": "hel', length=200))
    assert reply.startswith(b"HTTP/1.0 408")
    assert time.monotonic() - started < 5
    assert "did not arrive" in json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_deeply_nested_json_is_a_400_without_traceback(
    server: tuple[str, int], capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    body = b"[" * 30_000 + b"]" * 30_000  # under the 64 KB body limit
    with caplog.at_level(logging.INFO, logger="mmrag.chatbot"):
        reply = _exchange(server, _post(body))
    assert reply.startswith(b"HTTP/1.0 400")
    assert "nested too deeply" in json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]
    assert "Traceback" not in capfd.readouterr().err
    assert "bad request: the body is JSON nested too deeply" in caplog.text


def test_clients_hanging_up_leave_no_traceback(
    server: tuple[str, int], capfd: pytest.CaptureFixture[str]
) -> None:
    # Reset the connection right after asking for a figure list and a page: the
    # answer is written to a closed socket.
    for _ in range(20):
        sock = socket.create_connection(server, timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(_post(json.dumps({"message": "How do I clean the filter?"}).encode()))
        sock.close()  # RST, not FIN
    time.sleep(1.0)
    # The server still answers, and nothing it printed is a traceback.
    assert _exchange(server, b"GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        b"HTTP/1.0 200"
    )
    assert "Traceback" not in capfd.readouterr().err
