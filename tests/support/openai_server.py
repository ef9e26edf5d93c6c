"""An OpenAI-compatible chat server on 127.0.0.1 that records requests and answers a fixed text.

It speaks just enough of ``POST /v1/chat/completions`` for the real ``openai``
client (as used by LlamaIndex's ``OpenAILike``): a JSON completion, or an SSE
stream when the request asks for ``"stream": true``. ``status`` other than 200
answers every request with an OpenAI-style error body instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingOpenAIServer(ThreadingHTTPServer):
    """Records each request body in ``requests``; answers ``answer``."""

    daemon_threads = True

    def __init__(self, answer: str, status: int = 200) -> None:
        self.answer = answer
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        """The API base, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: RecordingOpenAIServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(body)
        self.server.paths.append(self.path)
        self.server.headers_seen.append(dict(self.headers.items()))
        if not self.path.endswith("/chat/completions"):
            self._send(404, b'{"error": {"message": "not found"}}', "application/json")
            return
        if self.server.status != HTTPStatus.OK:
            error = {"error": {"message": "model crashed", "type": "server_error", "code": None}}
            self._send(self.server.status, json.dumps(error).encode(), "application/json")
            return
        model = body.get("model", "unknown")
        if body.get("stream"):
            self._stream(model)
            return
        completion = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.server.answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        self._send(200, json.dumps(completion).encode(), "application/json")

    def _stream(self, model: str) -> None:
        events = []
        for i, word in enumerate(self.server.answer.split(" ")):
            delta = {"content": word if i == 0 else " " + word}
            if i == 0:
                delta["role"] = "assistant"
            chunk = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            events.append(f"data: {json.dumps(chunk)}\n\n")
        events.append("data: [DONE]\n\n")
        self._send(200, "".join(events).encode(), "text/event-stream")


def image_url_parts(request: dict[str, Any]) -> list[str]:
    """The ``image_url`` URLs of a recorded chat request's messages, in order."""
    urls = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            urls += [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
    return urls


def prompt_text(request: dict[str, Any]) -> str:
    """All text of a recorded chat request's messages, joined."""
    texts = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p.get("text", "") for p in content if p.get("type") == "text"]
    return "\n".join(texts)


@contextmanager
def openai_server(answer: str, status: int = 200) -> Iterator[RecordingOpenAIServer]:
    """Run a :class:`RecordingOpenAIServer` in a thread for the ``with`` block."""
    server = RecordingOpenAIServer(answer, status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
