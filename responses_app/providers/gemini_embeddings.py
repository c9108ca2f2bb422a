"""The Gemini API's embeddings (Google AI and Vertex AI): `:embedContent` (one content), `:batchEmbedContents`
(what google-genai's `embed_content` sends to Google AI) and Vertex AI's `:predict` for its text-embedding
models. The vectors are openai_embeddings' derived ones, or an entry's `embedding:`."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from responses_app.canned.tokens import count_tokens
from responses_app.providers.common import dumps, invalid, json_type
from responses_app.providers.gemini_generate import render_error, render_stream_error
from responses_app.providers.openai_embeddings import MAX_DIMENSIONS

NAME = "gemini"
ENDPOINT = "embeddings"
__all__ = ["render_error", "render_stream_error", "parse_embed", "parse_batch", "parse_predict", "render"]


@dataclass(frozen=True, slots=True)
class GeminiEmbeddingsRequest:
    model: str
    inputs: tuple[str, ...]
    dimensions: int
    shape: str  # "embed" (one `embedding`), "batch" (`embeddings`) or "predict" (Vertex AI's `predictions`)


def _dimensions(value: object, where: str) -> int:
    if value is None:
        return settings.MOCKLLM_EMBEDDING_DIMENSIONS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSIONS:
        raise invalid(f"Invalid value at '{where}': must be an integer from 1 to {MAX_DIMENSIONS}; got {value!r}.", where)
    return value


def _content_text(content: object, where: str) -> str:
    """The text of a Content's text parts (a plain string is taken as it is)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, dict):
        raise invalid(f"Invalid value at '{where}': expected a Content object, got {json_type(content)}.", where)
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise invalid(f"'{where}.parts' must be a non-empty array.", f"{where}.parts")
    texts = []
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise invalid(f"Invalid value at '{where}.parts[{i}]': expected an object.", f"{where}.parts[{i}]")
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts)


def parse_embed(data: dict, model: str) -> GeminiEmbeddingsRequest:
    """`:embedContent`: {content, outputDimensionality} (Google AI) or {content, embedContentConfig} (Vertex AI)."""
    if "content" not in data:
        raise invalid("* EmbedContentRequest.content: content is not specified", "content")
    config = data.get("embedContentConfig")
    dimensions = data.get("outputDimensionality")
    if isinstance(config, dict) and dimensions is None:
        dimensions = config.get("outputDimensionality")
    return GeminiEmbeddingsRequest(model, (_content_text(data["content"], "content"),),
                                   _dimensions(dimensions, "outputDimensionality"), "embed")


def parse_batch(data: dict, model: str) -> GeminiEmbeddingsRequest:
    """`:batchEmbedContents`: {requests: [{model, content, outputDimensionality}]}."""
    requests = data.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid("* BatchEmbedContentsRequest.requests: requests must be a non-empty array", "requests")
    inputs, dimensions = [], None
    for i, request in enumerate(requests):
        where = f"requests[{i}]"
        if not isinstance(request, dict) or "content" not in request:
            raise invalid(f"'{where}.content' is required.", f"{where}.content")
        inputs.append(_content_text(request["content"], f"{where}.content"))
        dimensions = dimensions or _dimensions(request.get("outputDimensionality"), f"{where}.outputDimensionality")
    return GeminiEmbeddingsRequest(model, tuple(inputs), dimensions or settings.MOCKLLM_EMBEDDING_DIMENSIONS, "batch")


def parse_predict(data: dict, model: str) -> GeminiEmbeddingsRequest:
    """Vertex AI's `:predict` for text-embedding models: {instances: [{content}], parameters: {outputDimensionality}}."""
    instances = data.get("instances")
    if not isinstance(instances, list) or not instances:
        raise invalid("`instances` must be a non-empty array.", "instances")
    inputs = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict) or "content" not in instance:
            raise invalid(f"'instances[{i}].content' is required.", f"instances[{i}].content")
        inputs.append(_content_text(instance["content"], f"instances[{i}].content"))
    parameters = data.get("parameters")
    dimensions = parameters.get("outputDimensionality") if isinstance(parameters, dict) else None
    return GeminiEmbeddingsRequest(model, tuple(inputs), _dimensions(dimensions, "parameters.outputDimensionality"),
                                   "predict")


def render(request: GeminiEmbeddingsRequest, vectors: list[list[float]]) -> bytes:
    if request.shape == "embed":
        tokens = count_tokens(request.inputs[0])
        return dumps({"embedding": {"values": vectors[0]}, "usageMetadata": {"promptTokenCount": tokens,
                                                                            "totalTokenCount": tokens}})
    if request.shape == "batch":
        return dumps({"embeddings": [{"values": vector} for vector in vectors]})
    return dumps({
        "predictions": [{"embeddings": {"values": vector, "statistics": {"token_count": count_tokens(text),
                                                                         "truncated": False}}}
                        for text, vector in zip(request.inputs, vectors, strict=True)],
        "metadata": {"billableCharacterCount": sum(len(text) for text in request.inputs)},
    })
