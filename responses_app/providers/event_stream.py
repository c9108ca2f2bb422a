"""The AWS event-stream encoding (`application/vnd.amazon.eventstream`) that Bedrock Runtime streams in.

One message is, all integers big-endian:

    total length (4) | headers length (4) | prelude CRC32 (4) | headers | payload | message CRC32 (4)

The prelude CRC covers the first 8 bytes; the message CRC covers everything before it, prelude CRC
included. A header is its name's length (1 byte), the name, a type byte (7: string), the value's
length (2 bytes) and the value. botocore (botocore/eventstream.py, EventStreamBuffer) checks both CRCs
and reads `:message-type` (event, exception or error), then `:event-type`, `:exception-type` or
`:error-code`/`:error-message`. The header blocks of the few event types a stream uses are encoded once.
"""
from __future__ import annotations

import struct
from binascii import crc32
from collections.abc import Callable
from functools import lru_cache

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7
_PRELUDE = struct.Struct("!II")
_CRC = struct.Struct("!I")


def header(name: str, value: str) -> bytes:
    """One string header."""
    encoded_name, encoded_value = name.encode(), value.encode()
    return bytes((len(encoded_name),)) + encoded_name + bytes((_STRING,)) + len(encoded_value).to_bytes(2, "big") \
        + encoded_value


def message(headers: bytes, payload: bytes) -> bytes:
    """One message from its encoded headers and its payload, with both CRCs."""
    prelude = _PRELUDE.pack(16 + len(headers) + len(payload), len(headers))
    prelude += _CRC.pack(crc32(prelude))
    body = prelude + headers + payload
    return body + _CRC.pack(crc32(body))


@lru_cache(maxsize=64)
def event_headers(event_type: str) -> bytes:
    """The headers of an event of this type with a JSON payload (encoded once per type)."""
    return header(":event-type", event_type) + header(":content-type", "application/json") \
        + header(":message-type", "event")


@lru_cache(maxsize=64)
def framer(event_type: str) -> Callable[[bytes], bytes]:
    """event() for one type, for a stream's many deltas. What comes before the payload (prelude, its CRC
    and the headers) depends only on the payload's length, so it is encoded, and its part of the message
    CRC computed, once per length: a delta's cost is one CRC over its payload."""
    headers = event_headers(event_type)
    prefixes: dict[int, tuple[bytes, int]] = {}
    pack = _CRC.pack

    def frame(payload: bytes) -> bytes:
        prefix = prefixes.get(len(payload))
        if prefix is None:
            prelude = _PRELUDE.pack(16 + len(headers) + len(payload), len(headers))
            head = prelude + pack(crc32(prelude)) + headers
            prefix = (head, crc32(head))
            if len(prefixes) < 1024:
                prefixes[len(payload)] = prefix
        return prefix[0] + payload + pack(crc32(payload, prefix[1]))

    return frame


def event(event_type: str, payload: bytes) -> bytes:
    """An event message: `payload` is its JSON."""
    return framer(event_type)(payload)


def exception(exception_type: str, payload: bytes) -> bytes:
    """A modelled exception (`throttlingException`...), which botocore raises as EventStreamError with that code."""
    return message(header(":exception-type", exception_type) + header(":content-type", "application/json")
                   + header(":message-type", "exception"), payload)


def error(code: str, text: str) -> bytes:
    """An error the stream's shape does not model: its code and message are headers, the payload empty."""
    return message(header(":error-code", code) + header(":error-message", text) + header(":message-type", "error"),
                   b"")


def corrupt(frame: bytes) -> bytes:
    """The frame with its message CRC wrong: the `malformed` fault (botocore raises ChecksumMismatch)."""
    return frame[:-4] + _CRC.pack(~_CRC.unpack(frame[-4:])[0] & 0xFFFFFFFF)
