"""Documents loaded (parsed, figures found and OCR'd) in worker processes.

The ingest's writer embeds and commits; parsing a PDF is Python and MuPDF work
that holds the GIL, so it runs in ``spawn``ed processes that import the loaders
only (about 0.2 s each: no LlamaIndex, no model). A loader is a picklable thunk
such as ``partial(load_pdf, path, config)``.

The pool can start before the writer knows what it needs: :meth:`LoadPool.prefetch`
starts loads at once (``mmrag ingest`` starts the smallest PDFs while it imports
its libraries and opens the store), and :meth:`LoadPool.run` takes a started load
over when asked for an equal loader. A load started but never asked for (the store
already held that document) is stopped, not waited for.

A worker that dies takes the pool and the documents in flight with it: those
are retried one at a time in a fresh pool, so the one that kills its worker is
reported failed and the others load. A loader whose parent is killed (``kill
-9`` of the ingest) ends within a second instead of waiting for work forever.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..cpus import usable_cpus
from ..errors import DocumentLoadError
from ..records import LoadedDocument

__all__ = ["LoadPool", "Loader", "default_workers", "load_or_message"]

logger = logging.getLogger(__name__)

Loader = Callable[[], LoadedDocument]
Result = LoadedDocument | str
# A loader process holds one manual's pages, its figures' pixels and PNGs, the OCR engines.
_MEMORY_PER_WORKER = 1.5 * (1 << 30)
_PARENT_POLL_S = 0.5


def default_workers() -> int:
    """Loader processes for an ingest: the CPUs this process may use (see
    :func:`~multimodal_rag.cpus.usable_cpus`), capped by memory (1.5 GB a worker)."""
    cpus = usable_cpus()
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return cpus
    return max(1, min(cpus, int(available // _MEMORY_PER_WORKER)))


def load_or_message(load: Loader) -> Result:
    """Run a loader; a document that cannot be loaded is returned as the error's message."""
    try:
        return load()
    except DocumentLoadError as e:
        return str(e)


def _init_worker(workers: int, parent: int) -> None:
    from . import import_pymupdf
    from .figures import share_ocr_threads

    threading.Thread(
        target=_exit_with_parent, args=(parent,), name="mmrag-parent-watch", daemon=True
    ).start()
    import_pymupdf(extras=False)

    # Two loaders with two OCR threads each, beside the embedder's threads, put more busy
    # threads than cores on a 2-core machine; the cores are shared out instead.
    share_ocr_threads(workers)


def _exit_with_parent(parent: int) -> None:
    """End this loader process once the process that started it is gone.

    A loader waits for its next document on a queue whose write end it holds too,
    so a parent killed with SIGKILL would leave it waiting, with its memory, for
    good. Orphans are handed to another parent, which is what this looks for.
    """
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


class LoadPool:
    """Loaders run in ``workers`` spawned processes; each result is the document, or
    the message of a document that could not be loaded.

    Args:
        workers: Processes (at least 1).

    Example:
        >>> from functools import partial
        >>> from multimodal_rag.loading.pdf import load_pdf
        >>> with LoadPool(2) as pool:  # doctest: +SKIP
        ...     for i, doc in pool.run([partial(load_pdf, "a.pdf"), partial(load_pdf, "b.pdf")]):
        ...         print(i, doc if isinstance(doc, str) else doc.pages)
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._started: dict[bytes, Future[Result]] = {}

    def _executor(self) -> ProcessPoolExecutor:
        import multiprocessing

        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.workers, os.getpid()),
            )
        return self._pool

    def prefetch(self, loads: Iterable[Loader]) -> None:
        """Start these loads now, before :meth:`run` asks for them."""
        for load in loads:
            key = pickle.dumps(load)
            if key not in self._started:
                self._started[key] = self._executor().submit(load_or_message, load)

    def run(self, loads: Sequence[Loader]) -> Iterator[tuple[int, Result]]:
        """``(index, result)`` as loads complete; at most ``2 * workers`` in flight.

        A load equal to one already started by :meth:`prefetch` is not run again.
        A document whose worker died when it was the only one in flight yields
        an error message instead of a result.
        """
        keys = [pickle.dumps(load) for load in loads]
        self._drop_unasked(set(keys))
        queue = list(range(len(loads)))[::-1]
        suspects: list[int] = []
        running: dict[Future[Result], tuple[int, bool]] = {}  # -> (index, ran alone)
        while queue or suspects or running:
            alone = bool(suspects)
            source = suspects if alone else queue
            limit = 1 if alone else 2 * self.workers
            while source and len(running) < limit:
                i = source.pop()
                started = None if alone else self._started.pop(keys[i], None)
                future = started or self._executor().submit(load_or_message, loads[i])
                running[future] = (i, alone)
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
                self._restart()
                logger.warning(
                    "an ingest worker died; retrying %d document(s) one at a time",
                    len(suspects),
                )

    def _drop_unasked(self, wanted: set[bytes]) -> None:
        """Forget started loads that are not ``wanted``; stop the workers if one of them
        is running (a speculative parse of a document the store already had must not hold
        up the documents it needs). The wanted ones then start again."""
        unasked = [f for key, f in self._started.items() if key not in wanted]
        if any(not f.cancel() and not f.done() for f in unasked):
            self._restart(kill=True)
        for key in [k for k in self._started if k not in wanted]:
            del self._started[key]

    def _restart(self, *, kill: bool = False) -> None:
        if self._pool is not None:
            if kill:
                # ProcessPoolExecutor has no public way to stop a running task before 3.14.
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    process.terminate()
            self._pool.shutdown(wait=kill, cancel_futures=True)
        self._pool = None
        self._started.clear()

    def close(self) -> None:
        """Stop the workers; loads started but never asked for are stopped, not awaited."""
        self._drop_unasked(set())
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None

    def __enter__(self) -> LoadPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
