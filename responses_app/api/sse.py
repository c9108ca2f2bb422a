"""Provider-neutral stream delivery: pacing, broken streams on demand, and how each stream ended.

The events arrive framed by their provider (SSE events, NDJSON lines...); this module only decides when
each goes out. A broken event (the `malformed` fault) is the provider's too, SSE's by default."""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from itertools import islice
from typing import Any

from responses_app.api.record import RequestRecord

logger = logging.getLogger("mockllm.sse")

# Without pacing, several events go out in one write: clients parse the same events either way,
# and a stream's cost grows with its number of writes, not its bytes.
BATCH_EVENTS = 64
# An unpaced, unbroken stream of an answer this long or shorter is made in full (whole_stream) and sent as
# one write, headers apart (api/handler.py): it takes microseconds, so there is no disconnect to watch for.
# A longer one goes out batch by batch (deliver_events), and a client that goes away stops it.
WHOLE_STREAM_CHARACTERS = 2000
DEFAULT_FAULT_AFTER_CHUNKS = 5
MALFORMED_EVENT = b'data: {"id": "mockllm-malformed", "choices": [{"delta": {"content": \n\n'


class StreamAborted(Exception):
    """Raised to drop the connection in the middle of a stream (the `disconnect` fault)."""


class QuietStreamAborted(logging.Filter):
    """For the ASGI server's loggers: a `disconnect` fault was asked for, not an application crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamAborted))


async def deliver_events(
    events: Iterable[bytes], *, record: RequestRecord, error_event: Callable[[str], bytes],
    ttft: float = 0.0, duration: float = 0.0, jitter: float = 0.0, seed: int | None = None,
    fault: Mapping[str, Any] | None = None, stall_seconds: float = 300.0, malformed: bytes = MALFORMED_EVENT,
) -> AsyncIterator[bytes]:
    """Yield the events, noting in `record.stream_end` how the stream ended.

    Unpaced and unbroken streams go out in batches. Otherwise each event is its own write: the first
    after `ttft` seconds, the rest spread evenly over `duration` (each gap varied by up to ±`jitter`
    from Random(seed)), against absolute deadlines so that the pace does not drift, sleeping (never
    spinning) in between. `fault` breaks the stream after some chunks or milliseconds (sse faults:
    error, disconnect, no_done, malformed, stall). The events are whatever the format frames them as
    (SSE text, event-stream messages); `malformed` is the format's broken event.
    """
    try:
        if not (ttft or duration or fault):
            async for part in _batched(events):
                yield part
        else:
            async for part in _paced(list(events), error_event, ttft, duration, jitter, seed, fault, stall_seconds,
                                     record, malformed):
                yield part
        if record.stream_end is None:
            record.stream_end = "completed"
    except (asyncio.CancelledError, GeneratorExit):
        record.stream_end = "client_disconnected"
        raise
    except StreamAborted:
        record.stream_end = "fault:disconnect"
        raise
    except Exception:
        logger.exception("error while streaming an answer")
        record.stream_end = "error"
        yield error_event("The server had an error while streaming the answer.")


def whole_stream(events: Iterable[bytes], *, record: RequestRecord, error_event: Callable[[str], bytes]) -> bytes:
    """A short stream with no pacing and no fault, made in full (WHOLE_STREAM_CHARACTERS), noting in
    `record.stream_end` how it ended: what was made before a failure, then the format's error event."""
    made: list[bytes] = []
    try:
        made.extend(events)  # keeps what came before a failure
    except Exception:
        logger.exception("error while streaming an answer")
        record.stream_end = "error"
        made.append(error_event("The server had an error while streaming the answer."))
    else:
        record.stream_end = "completed"
    return b"".join(made)


async def _batched(events: Iterable[bytes]) -> AsyncIterator[bytes]:
    """BATCH_EVENTS events per write, joined in C (a stream's events are a few hundred bytes each)."""
    events = iter(events)
    while True:
        batch: list[bytes] = []
        try:
            batch.extend(islice(events, BATCH_EVENTS))  # keeps what came before a failure
        except Exception:
            if batch:  # what was made before the failure still goes out, ahead of the error event
                yield b"".join(batch)
            raise
        if batch:
            yield b"".join(batch)
        if len(batch) < BATCH_EVENTS:
            return
        await asyncio.sleep(0)  # a point where a client's disconnect can cancel the stream


async def _paced(
    events: list[bytes], error_event: Callable[[str], bytes], ttft: float, duration: float, jitter: float,
    seed: int | None, fault: Mapping[str, Any] | None, stall_seconds: float, record: RequestRecord,
    malformed: bytes = MALFORMED_EVENT,
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    gap = duration / max(len(events) - 1, 1)
    start = loop.time()
    deadline = start + ttft
    mode = fault.get("mode") if fault else None
    cut_at = None
    if mode is not None and "after_ms" not in fault:
        cut_at = min(fault.get("after_chunks", DEFAULT_FAULT_AFTER_CHUNKS), max(len(events) - 1, 0))
    if mode == "no_done":  # the stream just ends: no [DONE], no message_stop, no response.completed
        events, mode = events[:-1], None
    index = 0
    while index < len(events):
        batch: list[bytes] = []
        # Everything already due goes out in one write: a stream that fell behind (a busy server)
        # catches up instead of drifting, and clients parse the same events either way.
        while index < len(events) and (not batch or deadline <= loop.time()):
            if mode is not None and _fault_due(fault, index, cut_at, len(events), start, deadline):
                if batch:
                    yield b"".join(batch)
                fault_time = start + fault.get("after_ms", 0) / 1000
                if "after_ms" in fault and loop.time() < fault_time:
                    await asyncio.sleep(fault_time - loop.time())
                record.stream_end = f"fault:{mode}"
                async for part in _break(mode, error_event, stall_seconds, malformed):
                    yield part
                return
            if not batch:
                delay = deadline - loop.time()
                await asyncio.sleep(delay if delay > 0 else 0)
            batch.append(events[index])
            index += 1
            deadline += gap * (1 + jitter * (2 * rng.random() - 1)) if jitter else gap
        yield b"".join(batch)


def _fault_due(fault: Mapping[str, Any], index: int, cut_at: int | None, count: int, start: float,
               deadline: float) -> bool:
    """Whether the fault strikes before event `index`: after N chunks, or once its time has come
    (at the latest before the last event, so that the stream never completes)."""
    if "after_ms" not in fault:
        return index == cut_at
    return deadline >= start + fault["after_ms"] / 1000 or index == count - 1


async def _break(mode: str, error_event: Callable[[str], bytes], stall_seconds: float,
                 malformed: bytes = MALFORMED_EVENT) -> AsyncIterator[bytes]:
    if mode == "error":
        yield error_event("Overloaded (mockllm: a mid-stream error was asked for).")
    elif mode == "malformed":
        yield malformed
    elif mode == "stall":  # the connection stays open and nothing more comes
        await asyncio.sleep(stall_seconds)
    elif mode == "disconnect":
        raise StreamAborted
