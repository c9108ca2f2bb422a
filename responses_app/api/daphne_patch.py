"""The one change made to a third-party library: the request class daphne serves HTTP with.

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
connection, so `install()` rebinds that name. tests/test_daphne_patch.py fails loudly if daphne or
Twisted change what this relies on.
"""
from __future__ import annotations

from http import HTTPStatus
from typing import Any

from daphne import http_protocol

from responses_app.team.redaction import redact_text

DaphneWebRequest = http_protocol.WebRequest
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


def install() -> None:
    http_protocol.WebRequest = APIWebRequest
