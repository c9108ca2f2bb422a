"""Tells every server process at once that the canned sets changed, over Channels' Redis layer."""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger("mockllm.index")


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
