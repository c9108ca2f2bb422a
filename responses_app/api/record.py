"""One typed record per request, attached once (`request.mockllm`) and filled in along the request path.

The access-log middleware creates it; identification, the view, the fault plan and the stream add what
they learn; the access log and the journal read it when the answer is complete. Nothing else about a
request is kept on Django's request object.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from responses_app.api.clients import ANONYMOUS, Client
from responses_app.providers.common import ResponseIds, new_request_id

if TYPE_CHECKING:  # types only: the providers import nothing of the API layer
    from responses_app.canned.matching import Match
    from responses_app.providers.base import Provider


@dataclass(eq=False, slots=True)
class RequestRecord:
    request_id: str = field(default_factory=new_request_id)
    started_at: float = field(default_factory=time.perf_counter)
    received_at: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))  # USE_TZ
    client: Client = ANONYMOUS
    provider: Provider | None = None  # the wire format of the route, once a view took the request
    body: bytes = b""  # the body as read by the view
    # What the request asked for and how it was answered (None: not known for this request).
    endpoint: str | None = None
    model: str | None = None
    stream: bool | None = None
    prompt: str = ""
    match: Match | None = None
    ids: ResponseIds | None = None  # the ids and timestamp the answer carries, once it is rendered
    input_tokens: int | None = None
    output_tokens: int | None = None
    stream_end: str | None = None
    hold: float = 0.0  # seconds to wait before sending the answer (timing asked for)
    notes: dict[str, Any] = field(default_factory=dict)  # mock_error, early_retry_ms, error: for the log

    @property
    def matched(self) -> int | str | None:
        """The id of the entry that answered, "default", or None when nothing was looked up."""
        if self.match is None:
            return None
        return self.match.entry.id if self.match.entry else "default"

    def log_fields(self) -> dict[str, Any]:
        """The access log's fields beyond method, path, status and duration."""
        fields: dict[str, Any] = {}
        if self.provider is not None and self.endpoint is not None:
            fields["provider"] = self.provider.NAME
        for name in ("endpoint", "model", "stream"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        if self.match is not None:
            fields.update(matched=self.matched, match_rule=self.match.rule, input_tokens=self.input_tokens,
                          output_tokens=self.output_tokens)
            if self.match.near_misses:
                fields["near_misses"] = list(self.match.near_misses)
        if self.stream_end is not None:
            fields["stream_end"] = self.stream_end
        fields.update(self.notes)
        client = self.client
        if client is not ANONYMOUS:
            fields.update(api_key=client.key_name, scenario=client.scenario, test_id=client.test_id)
        return fields


def record_of(request: Any) -> RequestRecord:
    """The request's record (a Django or DRF request); a fresh one for a request the middleware did not see."""
    request = getattr(request, "_request", request)
    record = request.__dict__.get("mockllm")
    if record is None:
        record = request.mockllm = RequestRecord()
    return record
