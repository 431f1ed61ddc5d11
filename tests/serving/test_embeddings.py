"""The embeddings request as the serving core sees it: what it reserves, counts and refuses."""

from __future__ import annotations

import msgspec

from parrotrouter.catalog import Capabilities, Deployment, ModelSpec
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.providers.embedding_models import EMBEDDING
from parrotrouter.serving.embeddings import PER_INPUT, EmbeddingRequest
from parrotrouter.serving.request import GenerationRequest
from parrotrouter.tokens import count_text

TEXTS = ["The cat sat on the mat.", "Ünïcödé text: 日本語"]


def request(inputs: list[str] | list[list[int]]) -> EmbeddingRequest:
    counts = [count_text(x, "text-embedding-3-small") if isinstance(x, str) else len(x) for x in inputs]
    return EmbeddingRequest("m", inputs, {}, 100, tuple(counts))


def test_reservation_bounds_cover_every_tokenizer() -> None:
    texts = request(TEXTS)
    exact = sum(count_text(t, "text-embedding-3-small") for t in TEXTS) + PER_INPUT * 2
    assert texts.billable("text-embedding-3-small", 999).prompt == exact  # OpenAI: its own tokenizer
    size = sum(len(t.encode()) for t in TEXTS) + PER_INPUT * 2
    assert texts.billable("gemini-embedding-001", 999).prompt == size  # others: bytes
    assert texts.cheap_billable(999).prompt == size
    assert texts.billable("embed-v4.0", 999).output == 0  # embeddings have no output tokens

    ids = request([[9906, 1917], [791, 8415, 7731]])  # "Hello world", "The cat sat"
    assert ids.billable("text-embedding-3-small", 0).prompt == 5 + PER_INPUT * 2
    assert ids.billable("embed-v4.0", 0).prompt == len("Hello world") + len("The cat sat") + PER_INPUT * 2
    assert ids.cheap_billable(0).prompt == 5 * 128 + PER_INPUT * 2  # no decoding: 128 bytes a token at most
    assert request([[10**9]]).billable("embed-v4.0", 0).prompt == 128 + PER_INPUT  # not cl100k: the bound


def test_prompt_count_and_shape() -> None:
    texts = request(TEXTS)
    assert texts.count_prompt("anything") == sum(texts.token_counts)
    assert texts.shape.ledger_name == "embeddings" and not texts.stream and texts.output_limit == 0
    assert texts.features() == ["embeddings"] and texts.needs() == (False, False, False)


def test_model_kinds_do_not_mix() -> None:
    embedder = ModelSpec("text-embedding-3-small", (Deployment("p", "e"),), capabilities=EMBEDDING)
    chat = ModelSpec("gpt-4o-mini", (Deployment("p", "c"),), capabilities=Capabilities())
    assert request(TEXTS).mismatch(embedder) is None
    assert "not an embedding model" in (request(TEXTS).mismatch(chat) or "")
    body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    chat_request = GenerationRequest.decode(msgspec.convert(body, ChatCompletionRequest), body, 10)
    assert chat_request.mismatch(chat) is None
    assert "embedding model" in (chat_request.mismatch(embedder) or "")
