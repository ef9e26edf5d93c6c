"""Writer locks: one writer at a time per store, readers never take one.

- :func:`file_lock` for stores with a local folder: ``flock`` on
  ``<folder>/writer.lock``. The kernel drops it when the holder dies, even by
  ``kill -9``, so a crashed writer never blocks the next one.
- :class:`LeaseLock` for a Chroma server shared by machines: a lease record
  (holder, token, expiry) in the store's blob table, renewed by a background
  thread while held. A holder that dies stops renewing and its lease lapses
  after ``ttl`` seconds. The blob table has no compare-and-swap, so a taker
  writes its claim, waits, and reads it back before it counts as held: two
  writers that claim together both see the later claim and only its writer goes on.

A writer that finds the lock held logs once on stderr (who holds it) and
polls until ``timeout``, then raises :class:`~multimodal_rag.errors.StoreLockedError`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..errors import StoreError, StoreLockedError

logger = logging.getLogger(__name__)

_POLL = 0.25
LEASE_KEY = "writer-lease.json"


def holder_description() -> str:
    """Who this process is, as a lock holder names itself."""
    since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"pid {os.getpid()} on {socket.gethostname()} since {since}"


def _wait_or_fail(location: str, holder: str, started: float, timeout: float, warned: bool) -> bool:
    if time.monotonic() - started >= timeout:
        raise StoreLockedError(
            f"another writer holds the store ({holder}); gave up after {timeout:g} s",
            location=location,
            holder=holder,
        )
    if not warned:
        logger.warning(
            "waiting up to %g s for the writer holding %s: %s", timeout, location, holder
        )
    time.sleep(_POLL)
    return True


@contextmanager
def file_lock(folder: Path, location: str, timeout: float) -> Iterator[None]:
    """Hold ``<folder>/writer.lock`` exclusively.

    Raises:
        StoreLockedError: Still held by another process after ``timeout`` seconds.
        StoreError: The lock file cannot be created (read-only store).
    """
    import fcntl

    path = folder / "writer.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreError(f"cannot take the writer lock ({e.strerror})", location=location) from e
    started, warned = time.monotonic(), False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = Path(path).read_text(encoding="utf-8", errors="replace").strip()
                warned = _wait_or_fail(location, holder or "unknown", started, timeout, warned)
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_description().encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class LeaseLock:
    """A writer lease kept in a blob table (for stores on a server).

    Args:
        get: Reads a blob by key (``None`` when absent).
        put: Writes a blob.
        delete: Deletes blobs by key prefix.
        location: The store, for messages.
        ttl: Seconds a lease lives without renewal.
    """

    def __init__(
        self,
        get: Callable[[str], bytes | None],
        put: Callable[[str, bytes], None],
        delete: Callable[[str], None],
        *,
        location: str,
        ttl: float = 30.0,
    ) -> None:
        self._get, self._put, self._delete = get, put, delete
        self.location = location
        self.ttl = ttl

    def _read(self) -> dict[str, object] | None:
        raw = self._get(LEASE_KEY)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _claim(self, token: str, holder: str) -> None:
        lease = {"token": token, "holder": holder, "expires": time.time() + self.ttl}
        self._put(LEASE_KEY, json.dumps(lease).encode())

    @contextmanager
    def hold(self, timeout: float) -> Iterator[None]:
        """Take the lease, keep renewing it while the block runs, then release it.

        Raises:
            StoreLockedError: Another holder's lease stayed live for ``timeout`` seconds.
        """
        token, holder = uuid.uuid4().hex, holder_description()
        started, warned = time.monotonic(), False
        while True:
            lease = self._read()
            if lease is None or float(str(lease.get("expires", 0))) < time.time():
                self._claim(token, holder)
                time.sleep(_POLL)  # let a simultaneous claim land, then see whose stuck
                lease = self._read()
                if lease is not None and lease.get("token") == token:
                    break
            warned = _wait_or_fail(
                self.location, str((lease or {}).get("holder", "unknown")), started, timeout, warned
            )
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    self._claim(token, holder)
                except StoreError as e:  # the next renewal may succeed; the lease has slack
                    logger.warning("could not renew the writer lease: %s", e)

        thread = threading.Thread(target=renew, name="mmrag-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            lease = self._read()
            if lease is not None and lease.get("token") == token:
                self._delete(LEASE_KEY)
