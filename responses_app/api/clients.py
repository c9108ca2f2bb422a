"""Who a request to /v1/ is from: its API key (by name), its scenario and its test run."""
from __future__ import annotations

import dataclasses
import hashlib
import re

from django.http import HttpRequest

from responses_app.canned.index import CannedIndex
from responses_app.models import hash_api_key
from responses_app.providers.common import APIError

TEST_ID_HEADER = "HTTP_X_MOCK_TEST_ID"
SCENARIO_HEADER = "HTTP_X_MOCK_SCENARIO"
TEST_ID_MAX, SCENARIO_MAX = 200, 100  # the columns' lengths (models.CannedResponse)
_PRINTABLE_ASCII = re.compile(r"[ -~]*")


@dataclasses.dataclass(frozen=True, slots=True)
class Client:
    key_name: str = ""  # the name of a recognised API key, "" when none
    scenario: str = ""
    test_id: str = ""


ANONYMOUS = Client()


def presented_key(request: HttpRequest) -> str:
    """The API key a request carries, in `x-api-key` (Anthropic), `api-key` (Azure OpenAI), `Authorization:
    Bearer` (OpenAI, Azure's Entra ID tokens, Vertex AI's access tokens), `x-goog-api-key` or the `key`
    query parameter (Gemini); for a request signed with AWS Signature Version 4 (boto3), its access key id
    (the signature itself is not checked, and never kept)."""
    meta = request.META
    key = (meta.get("HTTP_X_API_KEY", "").strip() or meta.get("HTTP_API_KEY", "").strip()
           or meta.get("HTTP_X_GOOG_API_KEY", "").strip())
    if key:
        return key
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    if "key=" in request.META.get("QUERY_STRING", ""):  # parsed only when it can be there
        return request.GET.get("key", "").strip()
    if authorization.startswith("AWS4-"):
        return sigv4_access_key(authorization)
    return ""


def sigv4_access_key(authorization: str) -> str:
    """The access key id of `AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, ...`."""
    start = authorization.find("Credential=")
    if start < 0:
        return ""
    start += len("Credential=")
    end = authorization.find("/", start)
    return authorization[start:end if end >= 0 else len(authorization)].strip(" ,")


def run_name(value: str, label: str, limit: int, *, param: str) -> str:
    """A test id or scenario name, surrounding white space trimmed: printable ASCII (0x20-0x7E), at most
    `limit` characters; else a 400 naming `param`.

    Only ASCII names the same run everywhere: ASGI servers read a header's bytes as Latin-1, so an id
    sent as UTF-8 in X-Mock-Test-Id would differ from the same id in the control API's JSON or query,
    and clients disagree on how to encode such a header at all. So other characters are refused, in
    headers, JSON and query parameters alike."""
    value = value.strip()
    if len(value) > limit:
        raise APIError(400, f"{label} is {len(value)} characters long; at most {limit} are allowed.", param=param)
    if not _PRINTABLE_ASCII.fullmatch(value):
        bad = next(char for char in value if not " " <= char <= "~")
        raise APIError(400, f"{label} must be printable ASCII (letters, digits, punctuation and spaces), so that it "
                            f"names the same test run in a header, a query parameter and JSON; it contains "
                            f"U+{ord(bad):04X}.", param=param)
    return value


def _header(request: HttpRequest, name: str, header: str, limit: int) -> str:
    return run_name(request.META.get(name, ""), header, limit, param=header)


class KeyRefused(APIError):
    """A 401 for a key that is required and not known, with what the request said of its run, for the journal."""

    def __init__(self, message: str, client: Client) -> None:
        super().__init__(401, message, code="invalid_api_key")
        self.client = client


def identify(request: HttpRequest, index: CannedIndex, *, require_key: bool) -> Client:
    """The request's client; raises a 400 APIError for a test id or scenario header it cannot take, and a
    KeyRefused when keys are required and this one is not known (its test run is still known then, so
    that the run finds the refused request in the journal)."""
    test_id = _header(request, TEST_ID_HEADER, "X-Mock-Test-Id", TEST_ID_MAX)
    asked_scenario = _header(request, SCENARIO_HEADER, "X-Mock-Scenario", SCENARIO_MAX)
    key = presented_key(request)
    info = index.api_keys.get(hash_api_key(key)) if key else None
    if info is None and require_key:
        said = Client("", asked_scenario, test_id)
        if not key:
            raise KeyRefused("You didn't provide an API key. Send it as `Authorization: Bearer KEY`, "
                             "`x-api-key: KEY`, `api-key: KEY` or `x-goog-api-key: KEY` (with boto3, as the access "
                             "key id); keys are created in the mockllm admin.", said)
        shown = key[:6] + "..." + key[-2:] if len(key) > 12 else "***"
        raise KeyRefused(f"Incorrect API key provided: {shown}. Keys are created in the mockllm admin.", said)
    scenario = asked_scenario or (info.scenario if info else "")
    if info is None and not test_id and not scenario:
        return ANONYMOUS
    return Client(info.name if info else "", scenario, test_id)


def client_key(request: HttpRequest, client: Client) -> str:
    """Who a request is from, for rate limits: its API key (hashed, never kept), else its address;
    and its test run, so that two runs sharing a key or a machine do not share a budget."""
    key = presented_key(request)
    who = "key:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16] if key else \
        "addr:" + str(request.META.get("REMOTE_ADDR", ""))
    return f"{who}|test:{client.test_id}" if client.test_id else who
