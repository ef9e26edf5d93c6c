"""Loading and embedding on a Ray cluster, away from the writer.

On one machine, worker processes only load documents
(:class:`~multimodal_rag.loading.pool.LoadPool`) and the writer embeds them: one
copy of the model, all cores for it. Across machines the cluster's CPUs are the
point, so each Ray actor also embeds.

The writer (the process holding the store's lock) hands each document's
*loader* — a picklable thunk such as ``partial(load_pdf, path, config)`` — to
an actor, which loads the document and computes its vectors with its own copy
of the embedders (they pickle as their recipe: each actor loads the model
once). The writer commits results as they arrive, so the store sees the same
single-writer protocol as a serial ingest.

:class:`RayPrepare` runs one actor per worker slot on a running cluster
(``ray.init(address=...)``); Ray restarts a dead actor and retries its task. It
yields ``(index, result)`` pairs in completion order, where ``result`` is
``(LoadedDocument, Embedded)`` or the error message of a document that failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import MultimodalRAGError
from ..loading.pool import Loader, load_or_message
from ..records import LoadedDocument
from .writer import Embedded, embed_document

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding

logger = logging.getLogger(__name__)

Result = tuple[LoadedDocument, Embedded] | str


def prepare(load: Loader, text: BaseEmbedding, image: MultiModalEmbedding | None) -> Result:
    """Load one document and compute its vectors; a load failure is returned as its message."""
    loaded = load_or_message(load)
    if isinstance(loaded, str):
        return loaded
    return loaded, embed_document(loaded, text, image)


# -- Ray ---------------------------------------------------------------------------------------


class RayPrepare:
    """Prepare documents on a Ray cluster: one actor per CPU the cluster offers.

    Args:
        address: The cluster (``HOST:PORT`` of its head, or ``"auto"``).
        text: The text embedder (sent once to each actor, which loads the model).
        image: The image embedder, or ``None``.
        actors: Actors to start (default: the cluster's CPUs).

    Raises:
        MultimodalRAGError: Ray is not installed or the cluster cannot be reached.
    """

    def __init__(
        self,
        address: str,
        text: BaseEmbedding,
        image: MultiModalEmbedding | None,
        actors: int | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as e:
            raise MultimodalRAGError(
                "ingest on Ray needs the ray extra: pip install 'multimodal_rag[ray]'"
            ) from e
        self._ray = ray
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise MultimodalRAGError(f"cannot reach the Ray cluster at {address}: {e}") from e
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        count = actors or max(1, int(resources.get("CPU", 1)))
        preparer: Any = ray.remote(num_cpus=1, max_restarts=2, max_task_retries=2)(_RayPreparer)
        text_ref = ray.put(text)
        image_ref = ray.put(image)
        self._actors: list[Any] = [preparer.remote(text_ref, image_ref) for _ in range(count)]

    def run(self, loads: Sequence[Loader]) -> Iterator[tuple[int, Result]]:
        """Results as they complete; each actor has at most two documents queued."""
        ray = self._ray
        todo = list(range(len(loads)))[::-1]
        running: dict[Any, int] = {}
        busy = {id(a): 0 for a in self._actors}
        owner: dict[Any, Any] = {}
        while todo or running:
            for actor in self._actors:
                while todo and busy[id(actor)] < 2:
                    i = todo.pop()
                    ref = actor.prepare.remote(loads[i])
                    running[ref], owner[ref] = i, actor
                    busy[id(actor)] += 1
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                i = running.pop(ref)
                busy[id(owner.pop(ref))] -= 1
                try:
                    yield i, ray.get(ref)
                except ray.exceptions.RayError as e:
                    yield i, f"the Ray worker failed on it ({type(e).__name__}: {e})"

    def close(self) -> None:
        """Stop the actors, and the connection if this opened it (the cluster keeps running)."""
        for actor in self._actors:
            self._ray.kill(actor)
        if self._owns_connection:
            self._ray.shutdown()


class _RayPreparer:
    """A Ray actor holding loaded embedders."""

    def __init__(self, text: BaseEmbedding, image: MultiModalEmbedding | None) -> None:
        self.text, self.image = text, image

    def prepare(self, load: Loader) -> Result:
        try:
            return prepare(load, self.text, self.image)
        except MultimodalRAGError as e:
            return str(e)
