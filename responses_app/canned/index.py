"""Each process's in-memory copy of the canned sets, and how it learns that they changed.

The canned responses form sets: the default set, named scenarios, and the entries one test run
added for itself (its X-Mock-Test-Id). Each set has a version (SetVersion); every change bumps the
set's version and ResponseSet.version in the same transaction. A process holds one immutable
CannedIndex and replaces it when:
- a change commits in this process: `SetVersion.bump` sends `sets_changed` on commit, which marks the
  index stale, and the next request rebuilds it before answering, so an admin edit is served on the
  very next request;
- a change commits in another process: with Redis configured (MOCKLLM_REDIS_URL), the writer
  announces it (change_bus.py) and waits until every serving process has marked its index stale;
  in any case a background thread in each serving process reads the version row every
  MOCKLLM_INDEX_POLL_SECONDS and rebuilds in the background when it moved. Requests never query
  the database to find this out.
A rebuild reads the set versions and rebuilds only the sets whose version moved; a set that has only
had entries added since the version held reads just those rows (SetVersion.rebuild_from), so adding
one entry to a run of 10,000 costs one entry in every process, not 10,000. Because versions
are bumped inside the writing transaction, reading version, rows, version and getting the same
number twice proves the rows are one committed state, without holding a lock.
"""
from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import functools
import gc
import logging
import threading
import time
from typing import Any

from django.db import close_old_connections

from responses_app.canned.change_bus import change_bus
from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import Entry, Match, SetIndex
from responses_app.models import ApiKey, CannedResponse, RecordingRun, ResponseSet, SetKey, SetVersion

logger = logging.getLogger("mockllm.index")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _read_version() -> int:
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


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    name: str
    scenario: str


@dataclasses.dataclass(frozen=True)
class CannedIndex:
    """Every canned set, the default answer and settings, and the API keys: what requests are answered from."""

    version: int
    unknown_response: str
    settings: dict[str, Any]
    sets: dict[SetKey, SetIndex]  # each set's index carries its version
    api_keys: dict[str, KeyInfo]  # by sha256 of the key
    record_modes: dict[str, str] = dataclasses.field(default_factory=dict)  # test runs put into record mode

    @functools.cached_property
    def has_recordings(self) -> bool:
        return any(entries.recordings for entries in self.sets.values())

    def recording_for(self, fingerprint: str, scenario: str = "", test_id: str = "") -> Entry | None:
        """The recording of the request with this fingerprint in the sets the request sees, first found."""
        for entries in self.sets_for(scenario, test_id):
            entry = entries.recording(fingerprint)
            if entry is not None:
                return entry
        return None

    def sets_for(self, scenario: str = "", test_id: str = "") -> list[SetIndex]:
        """The sets a request sees, first to last: its test run's, its scenario's, then the default set."""
        found = []
        for test in ((test_id, "") if test_id else ("",)):
            for name in ((scenario, "") if scenario else ("",)):
                entries = self.sets.get((name, test))
                if entries is not None:
                    found.append(entries)
        return found or [EMPTY]

    def find(self, request: ChatRequest, scenario: str = "", test_id: str = "") -> Match:
        sets = self.sets_for(scenario, test_id)
        near_misses: list[str] = []
        for entries in sets:
            match = entries.find(request, self.unknown_response)
            if match.entry is not None or len(sets) == 1:
                return match
            near_misses.extend(match.near_misses)
        return dataclasses.replace(match, near_misses=tuple(near_misses[:3]))

    def embedding_for(self, text: str, scenario: str = "", test_id: str = "") -> tuple[float, ...] | None:
        for entries in self.sets_for(scenario, test_id):
            vector = entries.embedding_for(text)
            if vector is not None:
                return vector
        return None

    @property
    def default(self) -> SetIndex:
        return self.sets.get(("", ""), EMPTY)

    def __len__(self) -> int:
        return sum(len(entries) for entries in self.sets.values())


EMPTY = SetIndex.build((), version=0, unknown_response="", settings={})


_COLUMNS = ("id", "prompt", "answer", "options", "position")


def _build_set(key: SetKey, version: int) -> SetIndex:
    rows = CannedResponse.objects.filter(scenario=key[0], test_id=key[1]).values_list(*_COLUMNS)
    return SetIndex.build(rows.iterator(chunk_size=2000), version=version, unknown_response="", settings={})


def _extend_set(held: SetIndex, key: SetKey, version: int) -> SetIndex:
    """`held` with the rows added to its set since (ids above its last)."""
    rows = CannedResponse.objects.filter(scenario=key[0], test_id=key[1], id__gt=held.last_id).values_list(*_COLUMNS)
    return held.extended(rows, version=version)  # usually a few rows: one fetch, no server-side cursor


class _MemoryRelease:
    """Gives memory back to the operating system after enough rows were built: every build would cost
    a full garbage collection over the whole index (150 ms with 30,000 entries), so adding one entry
    at a time would pay for the whole index at every step."""

    def __init__(self) -> None:
        self.rows_since = 0

    def after_build(self, rows: int, entries: int) -> None:
        self.rows_since += rows
        if rows and self.rows_since >= max(2_000, entries // 2):
            self.rows_since = 0
            release_memory()


_memory = _MemoryRelease()


def build_index(previous: CannedIndex | None = None, *, attempts: int = 5) -> CannedIndex:
    """Read the canned sets from the database as one consistent CannedIndex, reusing the sets of
    `previous` whose version has not moved, and reading only the added rows of those that have only
    grown since (SetVersion.rebuild_from)."""
    sets = dict(previous.sets) if previous is not None else {}
    built = 0
    for attempt in range(attempts):
        before = _read_version()
        versions = {(s, t): (v, r) for s, t, v, r in
                    SetVersion.objects.values_list("scenario", "test_id", "version", "rebuild_from")}
        for key in list(sets):
            if key not in versions:
                del sets[key]
        for key, (version, rebuild_from) in versions.items():
            held = sets.get(key)
            if held is not None and held.version == version:
                continue
            if held is not None and rebuild_from <= held.version < version:
                sets[key] = _extend_set(held, key, version)
                built += len(sets[key]) - len(held)
            else:
                sets[key] = _build_set(key, version)
                built += len(sets[key])
        keys = {key_hash: KeyInfo(name, scenario) for key_hash, name, scenario in
                ApiKey.objects.filter(is_active=True).values_list("key_hash", "name", "scenario")}
        record_modes = dict(RecordingRun.objects.values_list("test_id", "mode"))
        response_set = ResponseSet.get()
        if response_set.version == before or attempt == attempts - 1:
            # Labelled with the version read first: everything was read after it, so the index is at least
            # that new. When changes kept coming (the last attempt), a newer label could hide a change
            # from the poller, which compares it with the stored version.
            index = CannedIndex(before, response_set.unknown_response, dict(response_set.settings or {}), sets, keys,
                                record_modes)
            _memory.after_build(built, len(index))
            return index
    raise AssertionError("unreachable")


class CannedIndexHolder:
    """The process-wide current CannedIndex.

    Each change heard of (`mark_stale`) asks for a newer index: a generation number. A rebuild notes the
    generation it serves before it reads the database, and counts as done only once it is installed, so
    a request that arrives while a rebuild is under way waits for it (needs_rebuild() stays true until
    then) instead of being answered from the index that rebuild replaces.
    """

    def __init__(self) -> None:
        self._index: CannedIndex | None = None
        self._wanted = 1  # the newest generation asked for
        self._built = 0  # the generation the current index serves
        self._lock = threading.Lock()  # one rebuild at a time
        self._marks = threading.Lock()
        self._poller: threading.Thread | None = None

    def current(self) -> CannedIndex:
        """The index to answer from; rebuilt first if a change was heard of.

        On the event loop (the API views) it never rebuilds: the database may not be touched there.
        The API handler rebuilds in a thread before each request that needs it; a change heard of
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
        return self._index is None or self._built < self._wanted

    def mark_stale(self) -> None:
        with self._marks:
            self._wanted += 1

    def forget(self) -> None:
        """Drop the index; the next use rebuilds every set (tests whose database rolls back use this)."""
        with self._lock:
            self._index = None
            self.mark_stale()

    def _rebuild_if_stale(self) -> CannedIndex:
        with self._lock:
            if self._index is not None and self._built >= self._wanted:
                return self._index  # another thread rebuilt it while this one waited
            target = self._wanted  # read before the database: a change heard of meanwhile asks again
            try:
                self._index = build_index(self._index)
            except Exception:
                if self._index is None:
                    raise
                logger.exception("could not rebuild the response index; serving the previous one")
                return self._index
            self._built = target
            return self._index

    def refresh_from_database(self) -> bool:
        """Rebuild when the stored version differs from ours; True when a new index was installed."""
        index = self._index
        if index is not None and index.version == _read_version():
            return False
        self.mark_stale()
        fresh = self._rebuild_if_stale()
        logger.info(
            "response index reloaded", extra={"event": "index_reloaded", "version": fresh.version, "entries": len(fresh)}
        )
        return True

    def start_polling(self, interval: float) -> None:
        """Start (once per process) the threads that pick up changes made by other processes."""
        with self._lock:
            if self._poller is not None:
                return
            change_bus.subscribe(self.mark_stale)
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


canned_index = CannedIndexHolder()


def on_sets_changed(**kwargs: Any) -> None:
    """`sets_changed` receiver: this process rebuilds before its next request, and the others are told."""
    canned_index.mark_stale()
    change_bus.publish()
