"""Each process's in-memory copy of the canned sets, and how it learns that they changed.

The canned responses form sets: the default set, named scenarios, and the entries one test run
added for itself (its X-Mock-Test-Id). Each set has a version (SetVersion); every change bumps the
set's version and ResponseSet.version in the same transaction. A process holds one immutable
IndexSet and replaces it when:
- a change commits in this process: `bump_version` marks the index stale on commit, and the next
  request rebuilds it before answering, so an admin edit is served on the very next request;
- a change commits in another process: with Redis configured (MOCKLLM_REDIS_URL), the writer
  announces it on Channels' Redis layer and every serving process marks its index stale at once;
  in any case a background thread in each serving process reads the version row every
  MOCKLLM_INDEX_POLL_SECONDS and rebuilds in the background when it moved. Requests never query
  the database to find this out.
A rebuild reads the set versions and rebuilds only the sets whose version moved. Because versions
are bumped inside the writing transaction, reading version, rows, version and getting the same
number twice proves the rows are one committed state, without holding a lock.
"""
from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.db import close_old_connections, transaction

from responses_app.canned.conversation import ChatRequest
from responses_app.canned.matching import Match, ResponseIndex

logger = logging.getLogger("mockllm.index")


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _read_version() -> int:
    from responses_app.models import ResponseSet

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


Layer = tuple[str, str]  # (scenario, test_id); ("", "") is the default set


@dataclasses.dataclass(frozen=True, slots=True)
class KeyInfo:
    name: str
    scenario: str


@dataclasses.dataclass(frozen=True)
class IndexSet:
    """Every canned set, the default answer and settings, and the API keys: what requests are answered from."""

    version: int
    unknown_response: str
    settings: dict[str, Any]
    layers: dict[Layer, ResponseIndex]  # each layer's ResponseIndex carries that set's version
    api_keys: dict[str, KeyInfo]  # by sha256 of the key

    def layers_for(self, scenario: str = "", test_id: str = "") -> list[ResponseIndex]:
        """The sets a request sees, first to last: its test run's, its scenario's, then the default set."""
        found = []
        for test in ((test_id, "") if test_id else ("",)):
            for name in ((scenario, "") if scenario else ("",)):
                layer = self.layers.get((name, test))
                if layer is not None:
                    found.append(layer)
        return found or [EMPTY]

    def find(self, request: ChatRequest, scenario: str = "", test_id: str = "") -> Match:
        layers = self.layers_for(scenario, test_id)
        near_misses: list[str] = []
        for layer in layers:
            match = layer.find(request, self.unknown_response)
            if match.entry is not None or len(layers) == 1:
                return match
            near_misses.extend(match.near_misses)
        return dataclasses.replace(match, near_misses=tuple(near_misses[:3]))

    def embedding_for(self, text: str, scenario: str = "", test_id: str = "") -> tuple[float, ...] | None:
        for layer in self.layers_for(scenario, test_id):
            vector = layer.embedding_for(text)
            if vector is not None:
                return vector
        return None

    @property
    def default(self) -> ResponseIndex:
        return self.layers.get(("", ""), EMPTY)

    def __len__(self) -> int:
        return sum(len(layer) for layer in self.layers.values())


EMPTY = ResponseIndex.build((), version=0, unknown_response="", settings={})


def _build_layer(layer: Layer, version: int) -> ResponseIndex:
    from responses_app.models import CannedResponse

    rows = CannedResponse.objects.filter(scenario=layer[0], test_id=layer[1]).values_list(
        "id", "prompt", "answer", "options", "position")
    return ResponseIndex.build(rows.iterator(chunk_size=2000), version=version, unknown_response="", settings={})


def build_index(previous: IndexSet | None = None, *, attempts: int = 5) -> IndexSet:
    """Read the canned sets from the database as one consistent IndexSet, reusing the sets of
    `previous` whose version has not moved."""
    from responses_app.models import ApiKey, ResponseSet, SetVersion

    layers = dict(previous.layers) if previous is not None else {}
    rebuilt = False
    for attempt in range(attempts):
        before = _read_version()
        versions = {(s, t): v for s, t, v in SetVersion.objects.values_list("scenario", "test_id", "version")}
        for layer in list(layers):
            if layer not in versions:
                del layers[layer]
        for layer, version in versions.items():
            held = layers.get(layer)
            if held is None or held.version != version:
                layers[layer] = _build_layer(layer, version)
                rebuilt = True
        keys = {key_hash: KeyInfo(name, scenario) for key_hash, name, scenario in
                ApiKey.objects.filter(is_active=True).values_list("key_hash", "name", "scenario")}
        response_set = ResponseSet.get()
        if response_set.version == before or attempt == attempts - 1:
            if rebuilt:
                release_memory()
            return IndexSet(response_set.version, response_set.unknown_response,
                            dict(response_set.settings or {}), layers, keys)
    raise AssertionError("unreachable")


class IndexHolder:
    """The process-wide current ResponseIndex."""

    def __init__(self) -> None:
        self._index: IndexSet | None = None
        self._stale = True
        self._lock = threading.Lock()
        self._poller: threading.Thread | None = None

    def current(self) -> IndexSet:
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

    def forget(self) -> None:
        """Drop the index; the next use rebuilds every set (tests whose database rolls back use this)."""
        with self._lock:
            self._index = None
            self._stale = True

    def _rebuild_if_stale(self) -> IndexSet:
        with self._lock:
            if self._index is not None and not self._stale:
                return self._index  # another thread rebuilt it while this one waited
            self._stale = False  # set before reading: a change committing meanwhile marks it again
            try:
                self._index = build_index(self._index)
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
        fresh = build_index(index)
        with self._lock:
            if self._index is None or fresh.version >= self._index.version:
                self._index = fresh
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


response_index = IndexHolder()


def bump_version(layers: Iterable[Layer] | None = None) -> None:
    """Record that the canned sets changed; call inside the transaction that changed them.

    layers: the (scenario, test_id) sets whose entries changed; () when only the default answer,
    settings or API keys did; None when any set may have changed.
    """
    from django.db.models import F

    from responses_app.models import ResponseSet, SetVersion

    ResponseSet.get()
    ResponseSet.objects.filter(pk=ResponseSet.SINGLETON_ID).update(version=F("version") + 1)
    if layers is None:
        SetVersion.objects.bulk_create([SetVersion(scenario="", test_id="")], ignore_conflicts=True)
        SetVersion.objects.update(version=F("version") + 1)
    else:
        for scenario, test_id in set(layers):
            SetVersion.objects.bulk_create([SetVersion(scenario=scenario, test_id=test_id)], ignore_conflicts=True)
            SetVersion.objects.filter(scenario=scenario, test_id=test_id).update(version=F("version") + 1)
    transaction.on_commit(_changed)


def delete_entries(rows: Any) -> tuple[int, dict[str, int]]:
    """Delete a queryset of canned responses and record it: call inside a transaction. A test run's or
    scenario's set left empty goes altogether (processes drop sets without a version row), so a finished
    run leaves nothing behind; the other sets touched get a new version. Returns what delete() returns."""
    from responses_app.models import CannedResponse, SetVersion

    layers = set(rows.values_list("scenario", "test_id"))
    result = rows.delete()
    changed = set()
    for layer in layers:
        scenario, test_id = layer
        if layer == ("", "") or CannedResponse.objects.filter(scenario=scenario, test_id=test_id).exists():
            changed.add(layer)
        else:
            SetVersion.objects.filter(scenario=scenario, test_id=test_id).delete()
    bump_version(changed)
    return result


def _changed() -> None:
    response_index.mark_stale()
    change_bus.publish()


class ChangeBus:
    """Tells every server process at once that the canned sets changed, over Channels' Redis layer.

    One thread per process owns an event loop and the layer's connections: it listens (in serving
    processes) and sends what `publish` hands it. Without MOCKLLM_REDIS_URL this does nothing and
    processes rely on polling the version row.
    """

    GROUP = "mockllm.index"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._subscribers: list[Any] = []

    @staticmethod
    def enabled() -> bool:
        from django.conf import settings

        return bool(getattr(settings, "CHANNEL_LAYERS", None))

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="mockllm-change-bus", daemon=True).start()
                self._loop = loop
            return self._loop

    def publish(self, timeout: float = 2.0) -> None:
        """Announce a change; waits until Redis has it, so a client told "saved" can rely on it."""
        if not self.enabled():
            return
        from channels.layers import get_channel_layer

        async def send() -> None:
            await get_channel_layer().group_send(self.GROUP, {"type": "index.changed"})

        future = asyncio.run_coroutine_threadsafe(send(), self._ensure_loop())
        try:
            future.result(timeout)
        except Exception:  # Redis down: other processes still poll the version row
            logger.warning("could not announce a change on the channel layer", exc_info=True)

    def subscribe(self, callback: Any) -> None:
        if not self.enabled():
            return
        self._subscribers.append(callback)
        if len(self._subscribers) == 1:
            asyncio.run_coroutine_threadsafe(self._listen(), self._ensure_loop())

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        while True:
            try:
                layer = get_channel_layer()
                channel = await layer.new_channel()
                await layer.group_add(self.GROUP, channel)
                for callback in self._subscribers:  # anything missed while (re)connecting
                    callback()
                while True:
                    await layer.receive(channel)
                    for callback in self._subscribers:
                        callback()
            except Exception:  # Redis restarting: polling covers the gap; reconnect
                logger.warning("lost the channel layer; reconnecting", exc_info=True)
                await asyncio.sleep(1)


change_bus = ChangeBus()
