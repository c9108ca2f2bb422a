"""The changes made to a third-party library: the request class daphne serves HTTP with, and Twisted's
limits on a request's head.

Daphne (`runserver`, `daphne mockllm_site.asgi:application`) differs from what clients of the API must
see in three ways, and writes one secret where it must not, all mended by a subclass of daphne's WebRequest:
- An application that fails after its response started: daphne logs it and then tries to answer 500,
  which cannot go out once headers were sent, so the client waits forever. Uvicorn aborts the
  connection instead, which is what a client must see and what the `disconnect` stream fault asks for.
- A multipart/form-data body: Twisted parses it before daphne sees the request and, when it is
  malformed, answers a bare 400 and drops the connection (no error shape, no keep-alive). Daphne hands
  the raw body to the application anyway, so Twisted is told not to parse form submissions, and the
  API answers 415 in the provider's shape.
- The status line's reason phrase: daphne sets only the code, and Twisted's table of phrases lacks 429
  and 529, so they went out as `429 Unknown Status`. The phrase comes from http.HTTPStatus instead,
  and 529 (no standard phrase) gets "Site is overloaded", as Anthropic's edge sends it.
- Its access log writes each request's URL with the query, where Gemini clients may send their key
  (`?key=`): once the answer is finished, the URL it logs has secrets redacted (team/redaction.py).

Daphne's HTTPFactory.buildProtocol looks the class up by name in daphne.http_protocol for every
connection, so `install()` rebinds that name. The tests fail loudly if daphne or
Twisted change what this relies on (tests/test_seams.py, and the raw-HTTP cases of tests/test_hostile.py).

Twisted's HTTP channel, which reads the request before daphne's request class sees it, is changed too:
a request line or header line longer than 16 KB made it drop the connection without a word, and a
header block over 16 KB or a malformed request got a bare `400 Bad Request` with no body (a long Gemini
model name, or a fuzzer's path, is enough). Both limits are now MAX_HEAD_BYTES, and past them, or on a
request Twisted cannot parse, the client gets a 400 with a JSON error body before the connection
closes (the rest of such a request cannot be read).
"""
from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from daphne import http_protocol
from twisted.web import http as twisted_http

from responses_app.team.redaction import redact_text

DaphneWebRequest = http_protocol.WebRequest
MAX_HEAD_BYTES = 65536  # the request line, each header line, and all of them together
REASON_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus} | {529: b"Site is overloaded"}


class APIWebRequest(DaphneWebRequest):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        if message is None:
            message = REASON_PHRASES.get(code)
        super().setResponseCode(code, message)

    def finish(self) -> None:
        super().finish()
        if b"?" in self.uri:  # what daphne's access log writes next
            self.uri = redact_text(self.uri.decode("ascii", "replace")).encode("ascii", "replace")

    def handle_exception(self, exception: BaseException) -> None:
        if self._response_started:
            transport = self.channel.transport if self.channel is not None else None
            if transport is not None:
                transport.abortConnection()
            return
        super().handle_exception(exception)


def _refuse(channel: twisted_http.HTTPChannel, message: str) -> None:
    """A 400 in JSON (OpenAI's shape: which API the request was for cannot be read yet), then close."""
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": None}}).encode()
    channel.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s" % (len(body), body))
    channel.loseConnection()


def _line_too_long(channel: twisted_http.HTTPChannel, line: bytes) -> None:
    _refuse(channel, f"The request line or a header is longer than {MAX_HEAD_BYTES:,} bytes.")


def _bad_request(channel: twisted_http.HTTPChannel) -> None:
    if getattr(channel, "_receivedHeaderSize", 0) > channel.totalHeadersSize:
        _refuse(channel, f"The request's headers are longer than {MAX_HEAD_BYTES:,} bytes in all.")
    else:
        _refuse(channel, "The request was rejected as malformed HTTP.")


def install() -> None:
    http_protocol.WebRequest = APIWebRequest
    twisted_http.HTTPChannel.MAX_LENGTH = MAX_HEAD_BYTES
    twisted_http.HTTPChannel.totalHeadersSize = MAX_HEAD_BYTES
    twisted_http.HTTPChannel.lineLengthExceeded = _line_too_long
    twisted_http.HTTPChannel._respondToBadRequestAndDisconnect = _bad_request
