"""Tells every serving process that the canned sets changed, and waits until each has heard it.

With MOCKLLM_REDIS_URL, each process that serves the API keeps one Redis subscription (a thread of its
own). A change is announced with PUBLISH, whose answer is how many subscriptions received it; each
process marks its index stale and then acknowledges on a list named for that announcement, and
`publish` waits for that many acknowledgements. So once a change is committed and announced (for the
control API: before it answers 201), every serving process rebuilds before its next request: a test
that adds a response and asks any process gets the new answer. A process that does not acknowledge in
time (it hung or died without closing its connection) is logged, and its polling (index.py) covers it.

Without Redis this does nothing, and processes rely on polling the version row.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

import redis
from django.conf import settings

logger = logging.getLogger("mockllm.index")

ACK_SECONDS = 2.0  # how long an announcement waits for every process to acknowledge it
ACK_KEEP_SECONDS = 60  # acknowledgements left behind (a publisher that gave up) expire


class ChangeBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[], None]] = []
        self._client: redis.Redis | None = None
        self._listener: threading.Thread | None = None

    @staticmethod
    def enabled() -> bool:
        return bool(settings.MOCKLLM_REDIS_URL)

    @property
    def channel(self) -> str:
        return f"{settings.MOCKLLM_REDIS_PREFIX}:sets-changed"

    def _redis(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                self._client = redis.Redis.from_url(settings.MOCKLLM_REDIS_URL, socket_connect_timeout=2,
                                                    socket_timeout=ACK_SECONDS + 1)
            return self._client

    def publish(self) -> None:
        """Announce a change and wait until every serving process has marked its index stale."""
        if not self.enabled():
            return
        announcement = uuid.uuid4().hex
        acks = f"{settings.MOCKLLM_REDIS_PREFIX}:sets-changed:ack:{announcement}"
        try:
            client = self._redis()
            listeners = client.publish(self.channel, announcement)
            deadline = time.monotonic() + ACK_SECONDS
            heard = 0
            while heard < listeners:
                left = deadline - time.monotonic()
                if left <= 0 or client.blpop([acks], timeout=max(left, 0.01)) is None:
                    break
                heard += 1
            client.delete(acks)
        except redis.RedisError:  # Redis down: other processes still poll the version row
            logger.warning("could not announce a change over Redis", exc_info=True)
            return
        if heard < listeners:
            logger.warning("%d of %d serving processes did not acknowledge a change within %.0f s; they will "
                           "find it by polling", listeners - heard, listeners, ACK_SECONDS,
                           extra={"event": "change_not_acknowledged", "listeners": listeners, "heard": heard})

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` on every change announced by any process (in this process, once it serves)."""
        if not self.enabled():
            return
        with self._lock:
            self._subscribers.append(callback)
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="mockllm-change-bus", daemon=True)
                self._listener.start()

    def _notify(self) -> None:
        for callback in list(self._subscribers):
            callback()

    def _listen(self) -> None:
        prefix = f"{settings.MOCKLLM_REDIS_PREFIX}:sets-changed:ack:"
        while True:
            try:
                client = redis.Redis.from_url(settings.MOCKLLM_REDIS_URL, socket_connect_timeout=2)
                subscription = client.pubsub(ignore_subscribe_messages=True)
                subscription.subscribe(self.channel)
                self._notify()  # anything missed while (re)connecting
                for message in subscription.listen():
                    self._notify()
                    announcement = message["data"].decode("ascii", "replace")
                    with client.pipeline() as pipe:
                        pipe.rpush(prefix + announcement, os.getpid())
                        pipe.expire(prefix + announcement, ACK_KEEP_SECONDS)
                        pipe.execute()
            except Exception:  # noqa: BLE001 (Redis restarting: polling covers the gap; reconnect)
                logger.warning("lost the Redis subscription for changes; reconnecting", exc_info=True)
                time.sleep(1)


change_bus = ChangeBus()
