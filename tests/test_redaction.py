"""Secrets are scrubbed from journal headers, bodies and every log line."""
import io
import logging
import time
import types

from pythonjsonlogger.orjson import OrjsonFormatter

from responses_app.team.redaction import (
    JsonFormatter,
    RedactSecrets,
    redact_header,
    redact_text,
    redact_value,
    request_headers,
)


def test_keys_and_bearer_credentials_are_redacted_in_text():
    assert redact_text("Authorization: Bearer abc.def") == "Authorization: Bearer [redacted]"
    assert redact_text('{"x-api-key": "k123456789"}') == '{"x-api-key": "[redacted]"}'
    assert redact_text("use sk-proj-ABCDEFGH12345 here") == "use sk-proj-[redacted] here"
    assert redact_text("mk-0123456789abcdef") == "mk-[redacted]"
    assert redact_text("a task-oriented desk-lamp, nothing secret") == "a task-oriented desk-lamp, nothing secret"


def test_gemini_keys_are_redacted_in_urls_and_headers():
    assert redact_text("POST /v1beta/models/m:generateContent?alt=sse&key=AIzaSyA-0123456789abcdefghij HTTP/1.1") == \
        "POST /v1beta/models/m:generateContent?alt=sse&key=[redacted] HTTP/1.1"
    assert redact_text("GET /v1beta/models?key=anything") == "GET /v1beta/models?key=[redacted]"
    assert redact_text("x-goog-api-key: AIzaSyA-0123456789abcdefghij") == "x-goog-api-key: [redacted]"
    assert redact_text("a monkey=banana and key=value outside a URL") == "a monkey=banana and key=value outside a URL"
    assert request_headers({"HTTP_X_GOOG_API_KEY": "AIzaSyA-0123456789abcdefghij"}) == {"x-goog-api-key": "[redacted]"}


def test_secret_headers_keep_only_their_scheme():
    assert redact_header("Authorization", "Bearer sk-123") == "Bearer [redacted]"
    assert redact_header("x-api-key", "anything") == "[redacted]"
    assert redact_header("cookie", "sessionid=abc") == "[redacted]"
    assert redact_header("user-agent", "OpenAI/Python 3.57.0") == "OpenAI/Python 3.57.0"
    headers = request_headers({"HTTP_AUTHORIZATION": "Bearer sk-x", "HTTP_X_API_KEY": "sk-ant-y",
                               "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "10.0.0.1"})
    assert headers == {"authorization": "Bearer [redacted]", "x-api-key": "[redacted]",
                       "content-type": "application/json"}


def test_log_lines_lose_secrets_in_message_extra_fields_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    handler.setFormatter(JsonFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    try:
        logger.warning("sent %s", "Bearer sk-live-0123456789", extra={"header": "x-api-key: sk-ant-abcdefgh"})
        try:
            raise ValueError("bad key sk-proj-0123456789abc")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "0123456789" not in output and "abcdefgh" not in output
    assert output.count("[redacted]") == 4  # the traceback shows the key twice


class _FieldByFieldRedaction(logging.Filter):
    """The filter as it was before its quick scan: every text field redacted one by one (the oracle)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        for key, value in list(record.__dict__.items()):
            if key not in RedactSecrets._STANDARD and isinstance(value, (str, list, tuple, dict)):
                setattr(record, key, redact_value(value))
        return True


def _lines(filter_: logging.Filter, formatter: logging.Formatter, emit) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(filter_)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.redaction.same")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue().splitlines()


def test_the_quick_log_path_writes_the_same_lines_as_the_general_one(monkeypatch):
    """The access log's quick path (one scan for anything secret-looking, the formatter's lean field
    gathering and its once-a-second date) writes byte for byte what python-json-logger's formatter
    and a field-by-field redaction write, secrets or not, whatever the fields hold."""
    fmt = dict(fmt="%(asctime)s %(levelname)s %(name)s %(message)s",
               rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    clock = iter([1_700_000_000.125, 1_700_000_000.625, 1_700_000_001.5, 1_700_000_001.5, 1_700_000_002.0,
                  1_700_000_002.25, 1_700_000_003.0, 1_700_000_004.0, 1_700_000_004.5] * 2)
    fake_time = types.SimpleNamespace(time=lambda: next(clock), strftime=time.strftime, localtime=time.localtime)
    fake_time.time_ns = lambda: int(fake_time.time() * 1e9)
    monkeypatch.setattr(logging, "time", fake_time)  # the records' creation times, and only theirs

    def emit(logger: logging.Logger) -> None:
        access = {"event": "request", "request_id": "req_0123", "method": "POST", "path": "/v1/chat/completions",
                  "status": 200, "duration_ms": 1.25, "stream": False, "matched": 1, "input_tokens": None}
        logger.info("%s %s %s", "POST", "/v1/chat/completions", 200, extra=access)
        logger.info("%s %s %s", "POST", "/v1/messages", 200, extra={**access, "api_key": "sk-ant-abcdef123456"})
        logger.info("plain", extra={**access, "near_misses": ("Bearer abcdefgh", "what is 2+2?")})
        logger.warning("sent %s", "authorization: Token123456", extra={"header": "x-api-key: sk-ant-abcdefgh"})
        logger.info("nothing", extra={"model": "\u017fk-0123456789", "note": "\u212a"})  # long s: (?i) matches it
        logger.info("numbers only", extra={"status": 429, "ratio": 0.5, "flag": True, "none": None})
        logger.info("a dict", extra={"details": {"key": "mk-0123456789abcdef"}})
        logger.info("%d%%", 5, extra={"_private": "left out", "ok": "kept"})
        logger.info("google", extra={"model": "AIzaSyA0123456789abcdefghijKLMN", "url": "/v1beta/x?key=abcdefgh0123"})

    ours = _lines(RedactSecrets(), JsonFormatter(**fmt), emit)
    reference = _lines(_FieldByFieldRedaction(), OrjsonFormatter(**fmt), emit)
    assert len(ours) == 9
    assert "0123456789abcdefghij" not in ours[-1] and "abcdefgh0123" not in ours[-1]
    assert ours == reference
    assert "abcdef123456" not in "\n".join(ours) and "Token123456" not in "\n".join(ours)


def test_access_lines_are_written_after_the_work_at_hand_in_order_keeping_their_time():
    """api/middleware.py: inside an event loop, an access line waits for what is ready to run (the answer
    going out) and the lines of one turn are written together, in order; outside one, at once."""
    import asyncio

    from responses_app.api.middleware import access_logger, write_soon

    seen: list[tuple[str, float]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), record.created))

    def line(text: str) -> logging.LogRecord:
        return access_logger.makeRecord(access_logger.name, logging.INFO, __file__, 0, text, (), None)

    handler = Collect()
    access_logger.addHandler(handler)
    try:
        write_soon(line("outside a loop"))
        assert [text for text, _ in seen] == ["outside a loop"]

        async def answer_two() -> list[str]:
            first = line("first")
            time.sleep(0.01)
            write_soon(first)
            write_soon(line("second"))
            written_before = [text for text, _ in seen]
            await asyncio.sleep(0)
            return written_before

        assert asyncio.run(answer_two()) == ["outside a loop"]
        assert [text for text, _ in seen] == ["outside a loop", "first", "second"]
        assert seen[2][1] - seen[1][1] >= 0.009  # each keeps the time it was made at
    finally:
        access_logger.removeHandler(handler)


def test_the_quick_scan_finds_what_the_patterns_look_for():
    """redaction._may_hold_secret (the quick scan before any pattern runs) says yes wherever _ANY would."""
    from responses_app.team.redaction import _ANY, _may_hold_secret

    texts = ["Bearer x", "BEARER", "Api-Key: 1", "authorization", "sk-1", "MK-1", "?key=1", "KEY=", "AIzaSy", "aiza",
             "nothing here", "key = 1", "skey", "\u017fk-1", "\u212aey=1", ""]
    for text in texts:
        assert _may_hold_secret(text) == (_ANY.search(text) is not None), text
