"""A small local chatbot over a multimodal_rag store, using only the standard library's server.

One HTML page (``index.html`` beside this file) talks to a JSON endpoint backed
by :class:`multimodal_rag.CitedChatEngine`; each browser tab keeps its own
conversation. Answers show their numbered sources (document, page, figure) and
thumbnails of the figures among them. Nothing the browser receives names a
file or folder of the server: figures travel as ``/figures/<hash>.png`` URLs,
and errors as short messages (details go to the server's log).

Run::

    mmrag ingest manual.pdf --store store --profile offline
    python examples/chatbot/app.py --store store            # http://127.0.0.1:8000/

Without an LLM the answers are extractive (the sentences of the best sources
that answer the question, each cited). Any OpenAI-compatible server plugs in a
real LLM (``pip install llama-index-llms-openai-like``; the API key comes from
``OPENAI_API_KEY`` when set)::

    python examples/chatbot/app.py --store store \
        --llm-url http://127.0.0.1:11434/v1 --llm-model llava    # Ollama, sees the figures

``--multimodal`` / ``--no-multimodal`` overrides whether the figures go to the
LLM as images (by default the model name decides, see
:func:`multimodal_rag.llms.multimodal_choice`). ``--llm ollama --model
llama3.2`` or ``--llm openai --model gpt-4o-mini`` use those LlamaIndex
integrations when installed (``pip install llama-index-llms-ollama`` /
``llama-index-llms-openai``). When the LLM fails, the reply carries the
extractive answer over the same sources and an ``error`` line.

Endpoints:

================  ======  ===========================================================
path              method  what
================  ======  ===========================================================
``/``             GET     the chat page
``/api/info``     GET     the store's documents and models (``mmrag info --json``)
``/api/chat``     POST    ``{"message", "session"}`` -> answer, citations, figure URLs
``/api/reset``    POST    ``{"session"}``: forget that conversation
``/figures/NAME`` GET     a figure PNG of the store (content-addressed names only)
================  ======  ===========================================================

A malformed request gets a 400 with ``{"error": ...}`` and one info line in the
log, never a traceback; a client that stops sending mid-request gets a 408
after ``READ_TIMEOUT_S`` and frees its thread; a client that hangs up before
the answer is written is logged on one info line.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from multimodal_rag import CitedChatEngine, CitedQueryEngine, MultimodalRAGError, QueryError
from multimodal_rag.citations import citations_from_response
from multimodal_rag.errors import LLMError

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

    from multimodal_rag import MultimodalIndex

logger = logging.getLogger("mmrag.chatbot")

PAGE = Path(__file__).with_name("index.html")
MAX_BODY_BYTES = 64 * 1024
# Seconds a client may take to send each part of a request; a partial body would
# otherwise hold its server thread forever.
READ_TIMEOUT_S = 10.0
MAX_MESSAGE_CHARS = 2000
# Conversations kept in memory; the oldest is dropped first (a demo, not a session store).
MAX_SESSIONS = 200
# Figure files are named by content hash (loading.images.png_name); nothing else is served,
# so a request can never name a path outside the figures folder.
FIGURE_NAME = re.compile(r"[0-9a-f]{16,64}\.png")
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class BadRequest(ValueError):
    """A request the client must fix (HTTP 400)."""


class RequestTimeout(BadRequest):
    """The client stopped sending in the middle of its request (HTTP 408)."""


def _public(value: Any) -> Any:
    """A manifest value fit for the browser: a local model folder shows as its name only."""
    if isinstance(value, str) and ("/" in value or "\\" in value) and Path(value).is_absolute():
        return Path(value).name
    return value


class ChatService:
    """Chat engines per browser session over one index; safe to call from many threads.

    Args:
        index: The opened store.
        llm: Any LlamaIndex LLM, or ``None`` for extractive answers.
        top_k: Sources numbered per answer.
        multimodal: Send figures to the LLM as images; ``None`` decides from the LLM.
    """

    def __init__(
        self,
        index: MultimodalIndex,
        llm: LLM | None = None,
        top_k: int = 5,
        multimodal: bool | None = None,
    ) -> None:
        self.index = index
        self.llm = llm
        self.top_k = top_k
        self.multimodal = multimodal
        self._sessions: OrderedDict[str, CitedChatEngine] = OrderedDict()
        self._figures: dict[str, Path] = {}
        # One lock for all turns: Chroma's embedded client and the embedders are not
        # meant to be driven from several threads at once, and a local demo has one user.
        self._lock = threading.Lock()

    def _engine(self, session: str) -> CitedChatEngine:
        engine = self._sessions.get(session)
        if engine is None:
            query_engine = CitedQueryEngine(
                self.index.as_retriever(),
                llm=self.llm,
                top_k=self.top_k,
                multimodal=self.multimodal,
                # The store's own text model picks the sentences of an extractive answer.
                embed_model=self.index.text_embedder,
            )
            engine = CitedChatEngine(query_engine)
            self._sessions[session] = engine
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(session)
        return engine

    def _citation(self, citation: Any) -> dict[str, Any]:
        url = None
        if citation.image:
            path = Path(citation.image)
            self._figures[path.name] = path
            url = f"/figures/{path.name}"
        return {
            "n": citation.n,
            "doc": citation.doc,
            "page": citation.page,
            "figure": citation.figure,
            "kind": citation.kind,
            "label": citation.short(),
            "image_url": url,
        }

    def chat(self, session: str, message: str) -> dict[str, Any]:
        """Answer one turn of a conversation.

        Returns:
            ``{"answer", "question", "mode", "cited", "citations", "error"}``; each
            citation is ``{"n", "doc", "page", "figure", "kind", "label", "image_url"}``.
            ``error`` is ``None``, or a line saying the LLM failed (then the answer is
            the extractive one over the same sources).

        Raises:
            BadRequest: An empty or too long message, or a malformed session id.
        """
        message = message.strip()
        if not message:
            raise BadRequest("the message is empty")
        if len(message) > MAX_MESSAGE_CHARS:
            raise BadRequest(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
        if not SESSION_ID.fullmatch(session):
            raise BadRequest("the session id must be 1-64 letters, digits, '-' or '_'")
        error = None
        with self._lock:
            try:
                reply = self._engine(session).chat(message)
            except QueryError as e:
                raise BadRequest(str(e)) from e
            except LLMError as e:
                if e.fallback is None:
                    raise
                # The server's log gets the details (URL, cause); the browser a plain line.
                logger.error("LLM failed: %s", e)
                error = "The language model did not answer; these are the best passages."
                reply = e.fallback
            citations = [self._citation(c) for c in citations_from_response(reply)]
        metadata = reply.metadata or {}
        return {
            "answer": reply.response,
            "question": metadata.get("query", message),
            "mode": metadata.get("mode"),
            "cited": metadata.get("cited", []),
            "citations": citations,
            "error": error,
        }

    def reset(self, session: str) -> None:
        """Forget a conversation (unknown sessions are ignored)."""
        with self._lock:
            self._sessions.pop(session, None)

    def info(self) -> dict[str, Any]:
        """The store's documents, counts and model names (no server paths)."""
        with self._lock:
            info = self.index.info()
        return {
            "text_chunks": info.get("text_chunks"),
            "figures": info.get("figures"),
            "documents": info.get("documents", []),
            "models": {k: _public(v) for k, v in (info.get("models") or {}).items()},
        }

    def figure(self, name: str) -> Path | None:
        """The PNG file for a figure name, or ``None`` when the name is not a figure's."""
        if not FIGURE_NAME.fullmatch(name):
            return None
        with self._lock:
            path = self._figures.get(name) or self.index.store.figures_dir / name
        return path if path.is_file() else None


class ChatServer(ThreadingHTTPServer):
    """A threading HTTP server that carries the :class:`ChatService`."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        service: ChatService,
        *,
        read_timeout: float = READ_TIMEOUT_S,
    ) -> None:
        self.service = service
        self.page = PAGE.read_bytes()
        self.read_timeout = read_timeout
        super().__init__(address, ChatHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or stalls is routine: one log line, no traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            logger.info("%s: connection dropped (%s)", client_address[0], type(error).__name__)
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        """The page's URL, e.g. ``http://127.0.0.1:8000/``."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


class ChatHandler(BaseHTTPRequestHandler):
    """Routes the page, the JSON API and the figure files."""

    server: ChatServer
    server_version = "mmrag-chatbot/0.1"

    def setup(self) -> None:
        self.timeout = self.server.read_timeout  # applied to the socket by setup()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s " + format, self.address_string(), *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message})

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError as e:
            raise BadRequest("bad Content-Length") from e
        if length <= 0 or length > MAX_BODY_BYTES:
            raise BadRequest(f"the body must be 1 to {MAX_BODY_BYTES} bytes of JSON")
        try:
            raw = self.rfile.read(length)
        except TimeoutError as e:
            raise RequestTimeout(f"the body did not arrive within {self.timeout} s") from e
        if len(raw) < length:
            raise BadRequest(f"the body ended after {len(raw)} of {length} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadRequest(f"the body is not JSON: {e}") from e
        except RecursionError as e:
            raise BadRequest("the body is JSON nested too deeply") from e
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return data

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        service = self.server.service
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif path == "/api/info":
            try:
                self._json(HTTPStatus.OK, service.info())
            except MultimodalRAGError as e:
                logger.error("info failed: %s", e)
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "the store cannot be read")
        elif path.startswith("/figures/"):
            found = service.figure(path.removeprefix("/figures/"))
            if found is None:
                self._error(HTTPStatus.NOT_FOUND, "no such figure")
            else:
                self._send(HTTPStatus.OK, found.read_bytes(), "image/png")
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        service = self.server.service
        try:
            if path == "/api/chat":
                data = self._body()
                message, session = data.get("message"), data.get("session", "default")
                if not isinstance(message, str) or not isinstance(session, str):
                    raise BadRequest('expected {"message": str, "session": str}')
                self._json(HTTPStatus.OK, service.chat(session, message))
            elif path == "/api/reset":
                session = self._body().get("session", "default")
                service.reset(str(session))
                self._json(HTTPStatus.OK, {"reset": True})
            else:
                self._error(HTTPStatus.NOT_FOUND, "not found")
        except RequestTimeout as e:
            logger.info("%s: %s", self.address_string(), e)
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_TIMEOUT, str(e))
        except BadRequest as e:
            logger.info("%s: bad request: %s", self.address_string(), e)
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except MultimodalRAGError as e:
            # Messages of store and model errors name server paths: the log keeps them.
            logger.error("chat failed: %s", e)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"the answer failed ({type(e).__name__})")


def make_llm(
    kind: str, model: str | None, url: str | None = None, timeout: float = 120.0
) -> LLM | None:
    """The LLM for the command line: ``--llm-url`` (any OpenAI-compatible server) or ``--llm``.

    Returns ``None`` (extractive), MockLLM, or an installed integration.
    """
    if url:
        from multimodal_rag.llms import openai_compatible_llm

        if not model:
            raise SystemExit("--llm-url needs --llm-model NAME (the model the server serves)")
        try:
            return openai_compatible_llm(url, model, timeout=timeout)
        except LLMError as e:
            raise SystemExit(f"chatbot: error: {e}") from e
    if kind == "extractive":
        return None
    if kind == "mock":
        from llama_index.core.llms import MockLLM

        return MockLLM()
    try:
        if kind == "ollama":
            from llama_index.llms.ollama import Ollama

            return Ollama(model=model or "llama3.2", request_timeout=timeout)  # type: ignore[no-any-return]
        if kind == "openai":
            from llama_index.llms.openai import OpenAI

            return OpenAI(model=model or "gpt-4o-mini")
    except ImportError as e:
        raise SystemExit(f"--llm {kind} needs: pip install llama-index-llms-{kind} ({e})") from e
    raise SystemExit(f"unknown --llm {kind!r}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Chat with your manuals (multimodal_rag demo).")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", metavar="DIR", help="store folder built with `mmrag ingest`")
    where.add_argument("--chroma-url", metavar="URL", help="Chroma server instead of a folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    p.add_argument(
        "--llm-url",
        metavar="URL",
        help="OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1 (key: OPENAI_API_KEY)",
    )
    p.add_argument("--llm-model", metavar="NAME", help="model name for --llm-url")
    p.add_argument(
        "--multimodal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="send figures to the LLM as images (default: decided by the model name)",
    )
    p.add_argument("--llm-timeout", type=float, default=120.0, help="seconds per LLM answer")
    p.add_argument(
        "--llm", choices=("extractive", "mock", "ollama", "openai"), default="extractive"
    )
    p.add_argument("--model", default=None, help="model name for --llm ollama/openai")
    p.add_argument("--top-k", type=int, default=5, help="sources per answer")
    return p


def main(argv: list[str] | None = None) -> int:
    """Open the store and serve the chatbot until interrupted."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="chatbot: %(levelname)s: %(message)s")
    from multimodal_rag import MultimodalIndex

    try:
        index = MultimodalIndex.open(args.store, url=args.chroma_url, create=False)
    except MultimodalRAGError as e:
        print(f"chatbot: error: {e}", file=sys.stderr)
        return 2
    if args.llm_model and not args.llm_url:
        print("chatbot: error: --llm-model needs --llm-url", file=sys.stderr)
        return 2
    llm = make_llm(args.llm, args.llm_model or args.model, args.llm_url, args.llm_timeout)
    service = ChatService(index, llm, top_k=args.top_k, multimodal=args.multimodal)
    server = ChatServer((args.host, args.port), service)
    # The test (and a user with --port 0) reads the chosen port from this line.
    print(f"Serving {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
