"""Bedrock Runtime's errors, shared by its Converse and InvokeModel formats.

An error answer is its status, `x-amzn-ErrorType: <Name>:<namespace>` and `{"message": "..."}`:
botocore's rest-json parser takes the code from that header (the part before `:`) and raises the
operation's modelled exception of that name (`client.exceptions.ThrottlingException`...), retrying
the throttling codes and the 500/502/503/504 statuses in its standard mode. In the middle of a stream
an error is an exception message of the event stream (`:exception-type throttlingException`), which
botocore raises as EventStreamError with that code; a name the stream does not model is sent as an
error message (`:error-code`, `:error-message`), as the service does.
"""
from __future__ import annotations

from responses_app.providers import event_stream
from responses_app.providers.common import dumps

# The exception each status is raised as (service-2.json's `error.httpStatusCode` of each shape).
ERROR_TYPES = {
    400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
    404: "ResourceNotFoundException", 405: "ValidationException", 408: "ModelTimeoutException",
    409: "ConflictException", 413: "ValidationException", 415: "ValidationException", 422: "ValidationException",
    424: "ModelErrorException", 429: "ThrottlingException", 500: "InternalServerException",
    503: "ServiceUnavailableException", 529: "ServiceUnavailableException",
}
NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
# The exceptions a ConverseStream or InvokeModelWithResponseStream stream models, by their member name.
STREAM_EXCEPTIONS = ("internalServerException", "modelStreamErrorException", "validationException",
                     "throttlingException", "serviceUnavailableException", "modelTimeoutException")
DEFAULT_STREAM_EXCEPTION = "internalServerException"


def error_type(status: int, asked: str | None = None) -> str:
    """The exception name for a status, or the one asked for (an entry's `error.type`)."""
    if asked:
        return asked
    return ERROR_TYPES.get(status, "InternalServerException" if status >= 500 else "ValidationException")


def render_error(status: int, message: str, *, param: str | None = None, code: str | None = None,
                 error_type: str | None = None, request_id: str | None = None, details: dict | None = None) -> dict:
    return {"message": message}


def error_headers(status: int, asked_type: str | None = None) -> dict[str, str]:
    """The headers an error answer carries besides its body."""
    return {"x-amzn-ErrorType": f"{error_type(status, asked_type)}:{NAMESPACE}"}


def render_stream_error(message: str, *, error_type: str | None = None) -> bytes:
    """An exception in the middle of a stream: `internalServerException` unless another is asked for
    (`throttlingException`, `modelStreamErrorException`...; `ThrottlingException` is taken too)."""
    name = error_type or DEFAULT_STREAM_EXCEPTION
    member = name[:1].lower() + name[1:]
    if member in STREAM_EXCEPTIONS:
        body = {"message": message}
        if member == "modelStreamErrorException":
            body.update(originalStatusCode=500, originalMessage=message)
        return event_stream.exception(member, dumps(body))
    return event_stream.error(name, message)


MALFORMED_EVENT = event_stream.corrupt(event_stream.event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":""}}'))
