"""Loading and embedding away from the writer: worker processes on this machine, or Ray.

The writer (the process holding the store's lock) hands each document's
*loader* — a picklable thunk such as ``partial(load_pdf, path, config)`` — to
a worker, which loads the document and computes its vectors with its own copy
of the embedders (they pickle as their recipe: each worker loads the model
once). The writer commits results as they arrive, so the store sees the same
single-writer protocol as a serial ingest.

- :class:`ProcessPrepare`: a pool of ``spawn``ed processes (each given an equal
  share of the cores for its ONNX/torch threads). A worker that dies takes the
  pool and the documents in flight with it: those are retried one at a time in
  a fresh pool, so the one that kills its worker is reported failed and the
  others commit.
- :class:`RayPrepare`: one Ray actor per worker slot on a running cluster
  (``ray.init(address=...)``); Ray restarts a dead actor and retries its task.

Both yield ``(index, result)`` pairs in completion order, where ``result`` is
``(LoadedDocument, Embedded)`` or the error message of a document that failed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from ..errors import DocumentLoadError, MultimodalRAGError
from ..records import LoadedDocument
from .writer import Embedded, embed_document

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding

logger = logging.getLogger(__name__)

Loader = Callable[[], LoadedDocument]
Result = tuple[LoadedDocument, Embedded] | str
_MEMORY_PER_WORKER = 1.5 * (1 << 30)  # a worker's model, one manual's pages and PNGs


def default_workers() -> int:
    """The CPU count, capped by memory (about 1.5 GB a worker)."""
    cpus = os.cpu_count() or 1
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return cpus
    return max(1, min(cpus, int(available // _MEMORY_PER_WORKER)))


def prepare(load: Loader, text: BaseEmbedding, image: MultiModalEmbedding | None) -> Result:
    """Load one document and compute its vectors; a load failure is returned as its message."""
    try:
        loaded = load()
    except DocumentLoadError as e:
        return str(e)
    return loaded, embed_document(loaded, text, image)


# -- worker processes ------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(text: bytes, image: bytes | None, threads: int) -> None:
    import pickle

    os.environ["MMRAG_THREADS"] = str(threads)
    _WORKER["text"] = pickle.loads(text)
    _WORKER["image"] = None if image is None else pickle.loads(image)
    # Only where an embedder needs torch anyway: torch's OpenMP runtime in the process
    # makes the loader fall back to a Tesseract process per image (loading/ocr.py).
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)


def _work(load: Loader) -> Result:
    try:
        return prepare(load, _WORKER["text"], _WORKER["image"])
    except MultimodalRAGError as e:  # a model or store error in the worker: this document only
        return str(e)


class ProcessPrepare:
    """Prepare documents in ``workers`` spawned processes.

    Args:
        workers: Processes (at least 2; fewer makes no sense).
        text: The text embedder (pickled as its recipe).
        image: The image embedder, or ``None``.
    """

    def __init__(
        self, workers: int, text: BaseEmbedding, image: MultiModalEmbedding | None
    ) -> None:
        import pickle

        self.workers = workers
        self._init = (
            pickle.dumps(text),
            None if image is None else pickle.dumps(image),
            max(1, (os.cpu_count() or 1) // workers),
        )

    def _pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=self._init,
        )

    def run(self, loads: Sequence[Loader]) -> Iterator[tuple[int, Result]]:
        """Results as they complete; at most ``2 * workers`` documents in flight.

        When a worker dies, the pool dies with every document in flight; those are
        retried one at a time in a fresh pool, so the one that kills its worker is
        found and reported failed while the others commit.
        """
        queue = list(range(len(loads)))[::-1]
        suspects: list[int] = []
        pool = self._pool()
        running: dict[Future[Result], tuple[int, bool]] = {}  # -> (index, ran alone)
        try:
            while queue or suspects or running:
                alone = bool(suspects)
                source = suspects if alone else queue
                limit = 1 if alone else 2 * self.workers
                while source and len(running) < limit:
                    i = source.pop()
                    running[pool.submit(_work, loads[i])] = (i, alone)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    i, was_alone = running.pop(future)
                    try:
                        yield i, future.result()
                    except BrokenProcessPool:
                        if was_alone:
                            yield i, "its worker process died while loading it"
                        else:
                            suspects.append(i)
                        broken = True
                if broken:
                    suspects.extend(i for i, _ in running.values())
                    running.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    logger.warning(
                        "an ingest worker died; retrying %d document(s) one at a time",
                        len(suspects),
                    )
                    pool = self._pool()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


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
