"""Secrets are scrubbed from journal headers, bodies and every log line."""
import io
import logging

from responses_app.team.redaction import JsonFormatter, RedactSecrets, redact_header, redact_text, request_headers


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
