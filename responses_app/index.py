"""Each process's in-memory copy of the canned set, and how it learns that the set changed.

Every change to the set (a load, an admin save or delete) bumps ResponseSet.version in the same
transaction. A process holds one immutable ResponseIndex and replaces it when:
- a change commits in this process: `bump_version` marks the index stale on commit, and the next
  request rebuilds it before answering, so an admin edit is served on the very next request;
- a change commits in another process (another server, the watcher): a background thread in each
  serving process reads the version row every MOCKLLM_INDEX_POLL_SECONDS and rebuilds in the
  background when it moved. Requests never query the database to find this out.
Because the version is bumped inside the writing transaction, reading version, rows, version and
getting the same number twice proves the rows are one committed state, without holding a lock.
"""
from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gc
import logging
import threading
import time

from django.db import close_old_connections, transaction

from .matching import ResponseIndex

logger = logging.getLogger("mockllm.index")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _read_version() -> int:
    from .models import ResponseSet

    version = ResponseSet.objects.filter(pk=ResponseSet.SINGLETON_ID).values_list("version", flat=True).first()
    return version if version is not None else ResponseSet.get().version


def release_memory() -> None:
    """After a build: collect the previous index and give the memory the database rows used back to
    the operating system (glibc keeps it otherwise). Not gc.freeze(): called on every change, it
    would also freeze request objects in flight, whose cycles could then never be collected (the
    soak test saw memory grow by 49 MB in ten minutes)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def build_index(*, attempts: int = 5) -> ResponseIndex:
    """Read the whole canned set from the database as one consistent ResponseIndex."""
    from .models import CannedResponse, ResponseSet

    for attempt in range(attempts):
        before = _read_version()
        rows = CannedResponse.objects.values_list("id", "prompt", "answer", "options", "position")
        index = ResponseIndex.build(rows.iterator(chunk_size=2000), version=before, unknown_response="",
                                    settings={})
        response_set = ResponseSet.get()
        if response_set.version == before or attempt == attempts - 1:
            index = dataclasses.replace(
                index, version=response_set.version, unknown_response=response_set.unknown_response,
                settings=dict(response_set.settings or {}),
            )
            release_memory()
            return index
    raise AssertionError("unreachable")


class IndexHolder:
    """The process-wide current ResponseIndex."""

    def __init__(self) -> None:
        self._index: ResponseIndex | None = None
        self._stale = True
        self._lock = threading.Lock()
        self._poller: threading.Thread | None = None

    def current(self) -> ResponseIndex:
        """The index to answer from; rebuilt first if a change committed in this process.

        On the event loop (the API views) it never rebuilds: the database may not be touched there.
        The API handler rebuilds in a thread before each request that needs it; a change committing
        while a request is already past that point is served from the next request on.
        """
        index = self._index
        if self.needs_rebuild():
            if index is not None and _on_event_loop():
                return index
            index = self._rebuild_if_stale()
        return index

    def needs_rebuild(self) -> bool:
        """True when the next current() would read the database (call it off the event loop then)."""
        return self._index is None or self._stale

    def mark_stale(self) -> None:
        self._stale = True

    def _rebuild_if_stale(self) -> ResponseIndex:
        with self._lock:
            if self._index is not None and not self._stale:
                return self._index  # another thread rebuilt it while this one waited
            self._stale = False  # set before reading: a change committing meanwhile marks it again
            try:
                self._index = build_index()
            except Exception:
                self._stale = True
                if self._index is None:
                    raise
                logger.exception("could not rebuild the response index; serving the previous one")
            return self._index

    def refresh_from_database(self) -> bool:
        """Rebuild when the stored version differs from ours; True when a new index was installed."""
        version = _read_version()
        index = self._index
        if index is not None and index.version == version:
            return False
        fresh = build_index()
        with self._lock:
            if self._index is None or fresh.version >= self._index.version:
                self._index = fresh
        logger.info(
            "response index reloaded", extra={"event": "index_reloaded", "version": fresh.version, "entries": len(fresh)}
        )
        return True

    def start_polling(self, interval: float) -> None:
        """Start (once per process) the thread that picks up changes made by other processes."""
        with self._lock:
            if self._poller is not None:
                return
            self._poller = threading.Thread(
                target=self._poll, args=(interval,), name="mockllm-index-poller", daemon=True
            )
            self._poller.start()

    def _poll(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            try:
                self.refresh_from_database()
            except Exception:  # the database may be restarting: keep serving, try again
                logger.warning("could not check the response set version", exc_info=True)
                close_old_connections()


response_index = IndexHolder()


def bump_version() -> None:
    """Record that the canned set changed; call inside the transaction that changed it."""
    from django.db.models import F

    from .models import ResponseSet

    ResponseSet.get()
    ResponseSet.objects.filter(pk=ResponseSet.SINGLETON_ID).update(version=F("version") + 1)
    transaction.on_commit(response_index.mark_stale)
