"""Bedrock Runtime, driven by boto3's `bedrock-runtime` client and LangChain's ChatBedrockConverse against
a real server: Converse and its stream, InvokeModel and its stream, tool round trips, errors raised as
botocore's named exceptions (and retried by its standard mode), mid-stream exceptions, pacing, rate
limits, SigV4 keys; the event-stream encoder against botocore's own decoder; raw HTTP for the error shape."""
from __future__ import annotations

import base64
import http.client
import json
import random
import time
import zlib

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from responses_app.providers import event_stream
from responses_app.providers.bedrock_errors import render_stream_error

from .support import CONTROL_TOKEN, create_api_key, make_server, wait_for

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
SKY = "The sky is blue."
WEATHER = "It is 21 degrees and sunny in Lisbon."
RESPONSES = f"""
responses:
  - match: "what is the weather in lisbon?"
    has_tool_result: true
    response: "{WEATHER}"
  - match: "what is the weather in lisbon?"
    response:
      tool_calls:
        - name: get_weather
          arguments: {{city: Lisbon}}
  - match: "what colour is the sky?"
    response: "{SKY}"
  - match: "which api is this?"
    provider: bedrock
    response: "Bedrock."
  - match: "which api is this?"
    response: "Not Bedrock."
  - match: "think first"
    response:
      text: "Done."
      thinking: "Let me think."
  - match: "break the stream"
    response: "This stream breaks after two events."
    stream_error: {{mode: error, type: throttlingException, after_chunks: 2}}
  - match: "refuse me"
    response: "never sent"
    error: {{status: 503}}
"""
WEATHER_TOOL = {"toolSpec": {"name": "get_weather", "description": "The weather in a city.", "inputSchema": {"json": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}
ERROR_NAMESPACE = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = make_server(tmp_path_factory.mktemp("bedrock"), responses=RESPONSES, MOCKLLM_CONTROL_TOKEN=CONTROL_TOKEN)
    server.start(daphne=True)
    yield server
    server.stop(wait=False)


def client(server, *, headers: dict | None = None, attempts: int = 1, key: str = "AKIDMOCKLLMTEST", **config):
    """boto3's bedrock-runtime client pointed at the server; `headers` added to every request."""
    bedrock = boto3.client("bedrock-runtime", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id=key, aws_secret_access_key="not-a-secret",
                           config=Config(retries={"mode": "standard", "total_max_attempts": attempts}, **config))
    if headers:
        def add(request, **_):
            for name, value in headers.items():
                request.headers[name] = value
        bedrock.meta.events.register("before-sign.bedrock-runtime.*", add)
    return bedrock


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"text": text}]}]


def anthropic_body(text: str, **extra) -> str:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 256,
                       "messages": [{"role": "user", "content": text}], **extra})


def journal(server, test_id: str, count: int) -> list[dict]:
    found = httpx.get(f"{server.url}/control/journal", headers={"Authorization": f"Bearer {CONTROL_TOKEN}"}, timeout=15,
                      params={"test_id": test_id, "wait": 10, "min_count": count})
    assert found.status_code == 200, found.text
    return found.json()["data"]


# -- the encoder, checked by botocore's decoder ---------------------------------------------------------

def test_event_stream_frames_decode_with_botocores_parser_crcs_included():
    frames = [event_stream.event("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"text":"h\\u00e9"}}'),
              event_stream.event("messageStop", b'{"stopReason":"end_turn"}'),
              render_stream_error("slow down", error_type="throttlingException"),
              render_stream_error("unmodelled", error_type="SomethingElse")]
    data = b"".join(frames)
    buffer = EventStreamBuffer()
    decoded = []
    cuts = sorted(random.Random(7).sample(range(1, len(data)), 12))  # fed in pieces, as a socket delivers them
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        buffer.add_data(data[start:end])
        decoded.extend(buffer)
    assert len(decoded) == 4
    delta, stop, throttled, unmodelled = decoded
    assert delta.headers == {":event-type": "contentBlockDelta", ":content-type": "application/json",
                             ":message-type": "event"}
    assert json.loads(delta.payload) == {"contentBlockIndex": 0, "delta": {"text": "hé"}}
    assert delta.prelude.total_length == len(frames[0]) and delta.prelude.headers_length == len(
        event_stream.event_headers("contentBlockDelta"))
    assert stop.to_response_dict()["status_code"] == 200
    assert throttled.headers[":message-type"] == "exception"
    assert throttled.headers[":exception-type"] == "throttlingException"
    assert json.loads(throttled.payload) == {"message": "slow down"}
    assert throttled.to_response_dict()["status_code"] == 400  # what makes botocore raise
    assert unmodelled.headers == {":error-code": "SomethingElse", ":error-message": "unmodelled", ":message-type": "error"}
    broken = EventStreamBuffer()
    broken.add_data(event_stream.corrupt(frames[0]))
    with pytest.raises(ChecksumMismatch):
        list(broken)
    prelude_broken = EventStreamBuffer()
    prelude_broken.add_data(frames[0][:8] + bytes([frames[0][8] ^ 1]) + frames[0][9:])
    with pytest.raises(ChecksumMismatch):
        list(prelude_broken)


# -- Converse --------------------------------------------------------------------------------------------

def test_converse_answers_with_the_message_stop_reason_usage_and_metrics(srv):
    answer = client(srv).converse(modelId=MODEL, messages=user("what colour is the sky?"),
                                  system=[{"text": "Be brief."}], inferenceConfig={"maxTokens": 100, "temperature": 0})
    assert answer["output"]["message"] == {"role": "assistant", "content": [{"text": SKY}]}
    assert answer["stopReason"] == "end_turn"
    usage = answer["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert answer["metrics"]["latencyMs"] >= 0
    assert answer["ResponseMetadata"]["RequestId"].startswith("req_")


@pytest.mark.parametrize("model_id", [MODEL, PROFILE_ARN, "us.anthropic.claude-3-5-haiku-20241022-v1:0",
                                      "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"])
def test_model_ids_inference_profiles_and_arns_are_accepted(srv, model_id):
    test_id = f"bedrock-model-ids-{zlib.crc32(model_id.encode())}"  # each case waits for its own entries
    bedrock = client(srv, headers={"X-Mock-Test-Id": test_id})
    assert bedrock.converse(modelId=model_id, messages=user("which api is this?"))["output"]["message"][
        "content"] == [{"text": "Bedrock."}]  # the `provider: bedrock` entry
    invoked = json.loads(bedrock.invoke_model(modelId=model_id, body=anthropic_body("which api is this?"))["body"].read())
    assert invoked["content"] == [{"type": "text", "text": "Bedrock."}] and invoked["model"] == model_id
    entries = journal(srv, test_id, 2)
    assert [entry["model"] for entry in entries] == [model_id, model_id]


def test_an_entry_for_bedrock_does_not_answer_other_providers(srv):
    reply = httpx.post(f"{srv.url}/v1/chat/completions", timeout=10,
                       json={"model": "m", "messages": [{"role": "user", "content": "which api is this?"}]})
    assert reply.json()["choices"][0]["message"]["content"] == "Not Bedrock."


def test_converse_stream_sends_the_text_in_deltas(srv):
    events = list(client(srv).converse_stream(modelId=PROFILE_ARN, messages=user("what colour is the sky?"))["stream"])
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "messageStart" and events[0]["messageStart"] == {"role": "assistant"}
    assert kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    deltas = [event["contentBlockDelta"] for event in events if "contentBlockDelta" in event]
    assert len(deltas) == len(SKY) and {d["contentBlockIndex"] for d in deltas} == {0}
    assert "".join(d["delta"]["text"] for d in deltas) == SKY
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    usage = events[-1]["metadata"]["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > 0
    assert "latencyMs" in events[-1]["metadata"]["metrics"]


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse_stream"])
def test_a_tool_round_trip(srv, stream):
    bedrock = client(srv)
    messages = user("what is the weather in lisbon?")
    config = {"tools": [WEATHER_TOOL]}

    def ask() -> tuple[dict, str]:
        if not stream:
            answer = bedrock.converse(modelId=MODEL, messages=messages, toolConfig=config)
            return answer["output"]["message"], answer["stopReason"]
        events = list(bedrock.converse_stream(modelId=MODEL, messages=messages, toolConfig=config)["stream"])
        blocks: dict[int, dict] = {}
        for event in events:
            if "contentBlockStart" in event:
                start = event["contentBlockStart"]
                blocks[start["contentBlockIndex"]] = {"toolUse": {**start["start"]["toolUse"], "input": ""}}
            elif "contentBlockDelta" in event:
                delta = event["contentBlockDelta"]
                block = blocks.setdefault(delta["contentBlockIndex"], {"text": ""})
                if "toolUse" in delta["delta"]:
                    block["toolUse"]["input"] += delta["delta"]["toolUse"]["input"]
                else:
                    block["text"] += delta["delta"]["text"]
        for block in blocks.values():
            if "toolUse" in block:
                block["toolUse"]["input"] = json.loads(block["toolUse"]["input"])
        stop = next(event["messageStop"]["stopReason"] for event in events if "messageStop" in event)
        return {"role": "assistant", "content": [blocks[i] for i in sorted(blocks)]}, stop

    message, stop = ask()
    assert stop == "tool_use"
    [block] = message["content"]
    use = block["toolUse"]
    assert use["name"] == "get_weather" and use["input"] == {"city": "Lisbon"}
    assert use["toolUseId"].startswith("tooluse_")
    messages = [*messages, message, {"role": "user", "content": [{"toolResult": {
        "toolUseId": use["toolUseId"], "content": [{"text": "21 degrees, sunny"}], "status": "success"}}]}]
    final, stop = ask()
    assert stop == "end_turn" and final["content"] == [{"text": WEATHER}]


def test_a_forced_tool_gets_a_call_built_from_its_schema(srv):
    answer = client(srv).converse(modelId=MODEL, messages=user("what colour is the sky?"),
                                  toolConfig={"tools": [WEATHER_TOOL], "toolChoice": {"tool": {"name": "get_weather"}}})
    [block] = answer["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "get_weather" and set(block["toolUse"]["input"]) == {"city"}
    assert answer["stopReason"] == "tool_use"


def test_reasoning_content_when_thinking_is_enabled(srv):
    thinking = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    bedrock = client(srv)
    answer = bedrock.converse(modelId=MODEL, messages=user("think first"), additionalModelRequestFields=thinking)
    reasoning, text = answer["output"]["message"]["content"]
    assert reasoning["reasoningContent"]["reasoningText"]["text"] == "Let me think."
    assert reasoning["reasoningContent"]["reasoningText"]["signature"] and text == {"text": "Done."}
    events = list(bedrock.converse_stream(modelId=MODEL, messages=user("think first"),
                                          additionalModelRequestFields=thinking)["stream"])
    pieces = [e["contentBlockDelta"]["delta"]["reasoningContent"] for e in events
              if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})]
    assert "".join(p.get("text", "") for p in pieces) == "Let me think." and "signature" in pieces[-1]


def test_structured_output_gets_json_the_schema_accepts(srv):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    answer = client(srv).converse(modelId=MODEL, messages=user("what colour is the sky?"), outputConfig={
        "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": json.dumps(schema), "name": "c"}}}})
    assert set(json.loads(answer["output"]["message"]["content"][0]["text"])) == {"city"}


# -- mid-stream faults -------------------------------------------------------------------------------

@pytest.mark.parametrize(("asked", "code"), [
    ("throttlingException", "throttlingException"), ("modelStreamErrorException", "modelStreamErrorException"),
    ("ServiceUnavailableException", "serviceUnavailableException"), ("validationException", "validationException"),
    (None, "internalServerException")])
@pytest.mark.parametrize("operation", ["converse_stream", "invoke_model_with_response_stream"])
def test_a_mid_stream_exception_is_raised_by_botocore(srv, asked, code, operation):
    fault = "error; after_chunks=4" + (f"; type={asked}" if asked else "")
    bedrock = client(srv, headers={"X-Mock-Stream-Error": fault})
    if operation == "converse_stream":
        stream = bedrock.converse_stream(modelId=MODEL, messages=user("what colour is the sky?"))["stream"]
    else:
        stream = bedrock.invoke_model_with_response_stream(modelId=MODEL, body=anthropic_body("what colour is the sky?"))["body"]
    received = []
    with pytest.raises(botocore.exceptions.EventStreamError) as raised:
        for event in stream:
            received.append(event)
    assert len(received) == 4
    assert raised.value.response["Error"]["Code"] == code
    assert "mid-stream error was asked for" in raised.value.response["Error"]["Message"]


def test_an_entrys_faults_apply_to_bedrock(srv):
    bedrock = client(srv)
    with pytest.raises(botocore.exceptions.EventStreamError) as raised:
        list(bedrock.converse_stream(modelId=MODEL, messages=user("break the stream"))["stream"])
    assert raised.value.response["Error"]["Code"] == "throttlingException"
    with pytest.raises(bedrock.exceptions.ServiceUnavailableException):
        bedrock.converse(modelId=MODEL, messages=user("refuse me"))


def test_a_malformed_frame_fails_botocores_checksum(srv):
    bedrock = client(srv, headers={"X-Mock-Stream-Error": "malformed; after_chunks=2"})
    with pytest.raises(ChecksumMismatch):
        list(bedrock.converse_stream(modelId=MODEL, messages=user("what colour is the sky?"))["stream"])


def test_paced_frames_arrive_over_time(srv):
    bedrock = client(srv, headers={"X-Mock-Timing": "ttft_ms=200; chunks_per_second=40"})
    start = time.monotonic()
    arrivals, events = [], []
    for event in bedrock.converse_stream(modelId=MODEL, messages=user("what colour is the sky?"))["stream"]:
        arrivals.append(time.monotonic() - start)
        events.append(event)
    # 16 deltas and 4 other events at 40 a second after 0.2 s: about 0.7 s (a lower bound: pacing is never faster)
    assert arrivals[0] >= 0.15 and arrivals[-1] - arrivals[0] >= 0.35
    assert events[-1]["metadata"]["metrics"]["latencyMs"] >= 600  # the paced time, as the service reports its own


# -- InvokeModel ---------------------------------------------------------------------------------------

def test_invoke_model_answers_the_anthropic_message(srv):
    answer = client(srv).invoke_model(modelId=MODEL, body=anthropic_body("what colour is the sky?"),
                                      contentType="application/json", accept="application/json")
    assert answer["contentType"] == "application/json"
    message = json.loads(answer["body"].read())
    assert message["id"].startswith("msg_bdrk_01") and message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": SKY}] and message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] > 0


def test_invoke_model_with_response_stream_sends_base64_anthropic_events(srv):
    answer = client(srv).invoke_model_with_response_stream(modelId=MODEL, body=anthropic_body("what colour is the sky?"))
    assert answer["contentType"] == "application/json"
    events = [json.loads(event["chunk"]["bytes"]) for event in answer["body"]]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"] and "ping" not in kinds
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta") == SKY
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == events[-2]["usage"]["output_tokens"]


def test_invoke_model_with_a_tool_round_trip(srv):
    bedrock = client(srv)
    tools = [{"name": "get_weather", "input_schema": WEATHER_TOOL["toolSpec"]["inputSchema"]["json"]}]
    question = {"role": "user", "content": "what is the weather in lisbon?"}
    first = json.loads(bedrock.invoke_model(modelId=MODEL, body=anthropic_body("x", messages=[question], tools=tools))["body"].read())
    [use] = first["content"]
    assert first["stop_reason"] == "tool_use" and use["input"] == {"city": "Lisbon"}
    messages = [question, {"role": "assistant", "content": first["content"]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "21 degrees"}]}]
    final = json.loads(bedrock.invoke_model(modelId=MODEL, body=anthropic_body("x", messages=messages, tools=tools))["body"].read())
    assert final["content"] == [{"type": "text", "text": WEATHER}]


# -- errors ---------------------------------------------------------------------------------------------

def test_a_429_is_a_throttling_exception_retried_by_the_standard_mode(srv):
    bedrock = client(srv, attempts=3, headers={"X-Mock-Status": "429", "X-Mock-Retry-After": "0.1",
                                               "X-Mock-Test-Id": "bedrock-retries"})
    with pytest.raises(bedrock.exceptions.ThrottlingException) as raised:
        bedrock.converse(modelId=MODEL, messages=user("what colour is the sky?"))
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert raised.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-retry-after"] == "100"
    entries = journal(srv, "bedrock-retries", 3)
    assert len(entries) == 3 and {entry["status"] for entry in entries} == {429}


@pytest.mark.parametrize(("status", "exception"), [
    (400, "ValidationException"), (403, "AccessDeniedException"), (404, "ResourceNotFoundException"),
    (408, "ModelTimeoutException"), (424, "ModelErrorException"), (500, "InternalServerException"),
    (503, "ServiceUnavailableException")])
def test_each_status_is_raised_as_its_named_exception(srv, status, exception):
    bedrock = client(srv, headers={"X-Mock-Status": str(status)})
    with pytest.raises(getattr(bedrock.exceptions, exception)) as raised:
        bedrock.converse(modelId=MODEL, messages=user("what colour is the sky?"))
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    with pytest.raises(getattr(bedrock.exceptions, exception)):
        bedrock.invoke_model(modelId=MODEL, body=anthropic_body("what colour is the sky?"))


def test_a_bad_body_is_a_validation_exception(srv):
    bedrock = client(srv)
    with pytest.raises(bedrock.exceptions.ValidationException, match="messages.1.member.role"):
        bedrock.converse(modelId=MODEL, messages=[{"role": "robot", "content": [{"text": "hi"}]}])
    with pytest.raises(bedrock.exceptions.ValidationException, match="anthropic_version"):
        bedrock.invoke_model(modelId=MODEL, body=json.dumps({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
    with pytest.raises(bedrock.exceptions.ValidationException, match="not valid JSON"):
        bedrock.invoke_model(modelId=MODEL, body=b"{nope")


JSON = {"Content-Type": "application/json"}
CONVERSE = f"/model/{MODEL}/converse"
GOOD = json.dumps({"messages": user("what colour is the sky?")}).encode()
RAW_CASES = [  # (method, path, headers, body, status, error type, words in the message)
    ("POST", CONVERSE, JSON, b'{"messages": ', 400, "ValidationException", "not valid JSON"),
    ("POST", CONVERSE, JSON, b"[]", 400, "ValidationException", "JSON object"),
    ("POST", CONVERSE, JSON, json.dumps({"messages": []}).encode(), 400, "ValidationException", "'messages'"),
    ("POST", CONVERSE, JSON, json.dumps({"messages": [{"role": "user", "content": [{"pdf": 1}]}]}).encode(), 400,
     "ValidationException", "messages.1.member.content.1.member"),
    ("POST", CONVERSE, {"Content-Type": "text/plain"}, GOOD, 415, "ValidationException", "application/json"),
    ("POST", CONVERSE, JSON, json.dumps({"messages": user("hi"), "toolConfig": {"tools": [WEATHER_TOOL], "toolChoice": {
        "tool": {"name": "get_time"}}}}).encode(), 400, "ValidationException", "toolConfig.toolChoice.tool.name"),
    ("GET", CONVERSE, {}, None, 405, "ValidationException", "not allowed"),
    ("POST", f"/model/{MODEL}/unknown-operation", JSON, GOOD, 404, "ResourceNotFoundException", "Unknown request URL"),
    ("POST", "/model", JSON, GOOD, 404, "ResourceNotFoundException", "Unknown request URL"),
    ("POST", f"/model/{MODEL}/invoke", JSON, b'{"max_tokens": 5}', 400, "ValidationException", "anthropic_version"),
    ("POST", f"/model/{MODEL}/invoke", JSON, json.dumps({"anthropic_version": "bedrock-2023-05-31", "model": "x",
                                                          "max_tokens": 5, "messages": []}).encode(),
     400, "ValidationException", "extraneous key [model]"),
    ("POST", CONVERSE, {**JSON, "X-Mock-Status": "429"}, GOOD, 429, "ThrottlingException", "X-Mock-Status"),
    ("POST", CONVERSE, {**JSON, "X-Mock-Status": "503"}, GOOD, 503, "ServiceUnavailableException", "X-Mock-Status"),
    ("POST", CONVERSE, {**JSON, "X-Mock-Status": "teapot"}, GOOD, 400, "ValidationException", "X-Mock-Status"),
]


def test_raw_errors_have_bedrocks_shape_and_the_connection_survives(srv):
    connection = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    connection.connect()
    sock = connection.sock
    for method, path, headers, payload, status, error_type, words in RAW_CASES:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == status, (path, body)
        assert response.getheader("x-amzn-ErrorType") == error_type + ERROR_NAMESPACE
        assert response.getheader("Content-Type") == "application/json"
        assert response.getheader("x-amzn-RequestId", "").startswith("req_")
        assert set(body) == {"message"} and words in body["message"], body
        assert connection.sock is sock, f"the connection was closed after {method} {path} -> {status}"
    connection.request("POST", CONVERSE, body=GOOD, headers=JSON)
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["output"]["message"]["content"] == [{"text": SKY}]
    assert connection.sock is sock


def test_the_signature_is_never_journaled(srv):
    client(srv, headers={"X-Mock-Test-Id": "bedrock-sigv4"}).converse(modelId=MODEL, messages=user("what colour is the sky?"))
    [entry] = journal(srv, "bedrock-sigv4", 1)
    assert entry["provider"] == "bedrock" and entry["endpoint"] == "converse" and entry["model"] == MODEL
    assert entry["headers"]["authorization"] == "[redacted]"
    assert "Signature=" not in json.dumps(entry) and "AKIDMOCKLLMTEST" not in json.dumps(entry)


def test_the_access_key_id_is_the_api_key_and_rate_limits_apply(tmp_path):
    server = make_server(tmp_path, responses=RESPONSES + "\nsettings:\n  rate_limits: {requests_per_minute: 2}\n",
                         MOCKLLM_REQUIRE_API_KEY="1")
    create_api_key(server, "boto", "AKIDKNOWNKEY")
    server.start()
    try:
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client(server, key="AKIDUNKNOWN").converse(modelId=MODEL, messages=user("what colour is the sky?"))
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
        bedrock = client(server, key="AKIDKNOWNKEY")
        for _ in range(2):
            assert bedrock.converse(modelId=MODEL, messages=user("what colour is the sky?"))["stopReason"] == "end_turn"
        with pytest.raises(bedrock.exceptions.ThrottlingException) as limited:
            bedrock.converse(modelId=MODEL, messages=user("what colour is the sky?"))
        headers = limited.value.response["ResponseMetadata"]["HTTPHeaders"]
        assert headers["x-ratelimit-remaining-requests"] == "0" and int(headers["x-amz-retry-after"]) > 0
        wait_for(lambda: server.log_events("request"), message="the access log")
    finally:
        server.stop(wait=False)


# -- LangChain --------------------------------------------------------------------------------------

def langchain_model(server, **options):
    from langchain_aws import ChatBedrockConverse

    return ChatBedrockConverse(model=MODEL, region_name="us-east-1", endpoint_url=server.url,
                               aws_access_key_id="AKIDMOCKLLMTEST", aws_secret_access_key="not-a-secret", **options)


def test_langchain_chat_bedrock_converse_streams(srv):
    chunks = list(langchain_model(srv).stream("what colour is the sky?"))
    assert len(chunks) > 2
    assert "".join(str(chunk.text) for chunk in chunks) == SKY


def test_langchain_chat_bedrock_converse_calls_a_tool(srv):
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "21 degrees, sunny"

    model = langchain_model(srv).bind_tools([get_weather])
    question = HumanMessage("what is the weather in lisbon?")
    asked = model.invoke([question])
    [call] = asked.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Lisbon"}
    final = model.invoke([question, asked, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])])
    assert str(final.text) == WEATHER
    assert final.usage_metadata["total_tokens"] > 0


def test_the_invoke_stream_chunk_payload_is_base64_on_the_wire(srv):
    """boto3 hands back decoded bytes; on the wire the chunk's payload is {"bytes": base64}."""
    response = httpx.post(f"{srv.url}/model/{MODEL}/invoke-with-response-stream", timeout=10,
                          content=anthropic_body("what colour is the sky?"), headers=JSON)
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    assert response.headers["x-amzn-bedrock-content-type"] == "application/json"
    buffer = EventStreamBuffer()
    buffer.add_data(response.content)
    first = next(iter(buffer))
    assert first.headers[":event-type"] == "chunk"
    assert json.loads(base64.b64decode(json.loads(first.payload)["bytes"]))["type"] == "message_start"
