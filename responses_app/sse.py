"""Provider-neutral SSE delivery: events from a provider module, written to the client."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable

logger = logging.getLogger("mockllm.sse")

# Without pacing, several events go out in one write: clients parse the same events either way,
# and a stream's cost grows with its number of writes, not its bytes.
BATCH_BYTES = 16 * 1024


async def deliver(
    events: Iterable[bytes], *, log_fields: dict, error_event: Callable[[str], bytes]
) -> AsyncIterator[bytes]:
    """Yield the events in batches, noting in `log_fields["stream_end"]` how the stream ended."""
    batch: list[bytes] = []
    size = 0
    try:
        for event in events:
            batch.append(event)
            size += len(event)
            if size >= BATCH_BYTES:
                yield b"".join(batch)
                batch.clear()
                size = 0
                await asyncio.sleep(0)  # a point where a client's disconnect can cancel the stream
        if batch:
            yield b"".join(batch)
        log_fields["stream_end"] = "completed"
    except (asyncio.CancelledError, GeneratorExit):
        log_fields["stream_end"] = "client_disconnected"
        raise
    except Exception:
        logger.exception("error while streaming an answer")
        log_fields["stream_end"] = "error"
        yield b"".join(batch) + error_event("The server had an error while streaming the answer.")
