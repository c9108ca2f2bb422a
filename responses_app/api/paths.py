"""Which URL paths are provider API paths: served by the lean API handler, journaled, access-logged with
a request id, and answered with provider-shaped errors. Each provider family has its own prefixes."""
from __future__ import annotations

# /v1: OpenAI and Anthropic (and Gemini's and Vertex AI's v1); /v1beta, /v1beta1: Gemini and Vertex AI;
# /openai: Azure OpenAI; /model: Bedrock Runtime; /api: Ollama.
API_PREFIXES = ("/v1", "/v1beta", "/v1beta1", "/openai", "/model", "/api")


def is_api_path(path: str) -> bool:
    """True for a prefix itself or anything under it (`/v1`, `/v1/...`), not for `/v1x` or `/apiary`."""
    head = path.split("/", 2)[1] if path.startswith("/") else ""
    return f"/{head}" in API_PREFIXES
