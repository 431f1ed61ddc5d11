"""What an Anthropic deployment reads of a native body beyond its translation (`bounds.py`)."""

from __future__ import annotations

import json

import orjson

from parrotrouter.accounting.bounds import PER_FILE_REF, PER_IMAGE
from parrotrouter.api.messages.bounds import TEMPLATE, native_prompt_bound, unseen_text
from parrotrouter.api.messages.decode import to_chat
from parrotrouter.api.messages.protocol import MessagesRequest
from parrotrouter.protocol.validation import convert
from parrotrouter.serving.request import GenerationRequest, NativeBody

SEARCH = {"type": "search_result", "source": "https://example.com", "title": "t",
          "content": [{"type": "text", "text": "found"}]}
WEB = {"type": "web_search_20250305", "name": "web_search"}


def body(*blocks: dict[str, object], **extra: object) -> dict[str, object]:
    return {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": list(blocks)}], **extra}


def test_unseen_text_is_what_the_translation_drops() -> None:
    nested = {"type": "tool_result", "tool_use_id": "t", "content": [SEARCH, {"type": "text", "text": "seen"}]}
    text = unseen_text(body({"type": "text", "text": "seen"}, nested, tools=[WEB, {"name": "f", "input_schema": {}}]))
    assert json.loads(text) == [SEARCH, WEB]
    assert unseen_text(body({"type": "text", "text": "seen"})) == ""


def test_the_bound_prices_images_and_documents_not_their_bytes() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000}}
    raw = body(image)
    size = len(orjson.dumps(raw))
    assert native_prompt_bound(raw, size) == size - 100_000 + PER_IMAGE + TEMPLATE + 8
    url = body({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}})
    assert native_prompt_bound(url, 100) >= PER_FILE_REF
    upload = body({"type": "container_upload", "file_id": "file_1"})
    assert native_prompt_bound(upload, 100) >= PER_FILE_REF


def test_the_native_bound_holds_for_models_a_native_deployment_serves() -> None:
    """Claude (counted by bytes) gets the native body's bound; an OpenAI model on the same route
    list is served the translation, tokenized exactly (the bytes would over-reserve it 4x)."""
    raw = body(SEARCH, {"type": "text", "text": "Summarise " * 1000})
    payload = convert(raw, MessagesRequest)
    translated = to_chat(payload, 8192)
    size = len(orjson.dumps(raw))
    request = GenerationRequest.decode(translated.canonical, translated.raw, size, endpoint="messages",
                                       native=NativeBody("anthropic.messages", raw,
                                                         prompt_bound=native_prompt_bound(raw, size),
                                                         output_bound=payload.max_tokens))
    plain = GenerationRequest.decode(translated.canonical, translated.raw, size)
    assert request.billable("claude-sonnet-4-5", 5).prompt == native_prompt_bound(raw, size)
    assert request.billable("claude-sonnet-4-5", 5).prompt > plain.billable("claude-sonnet-4-5", 5).prompt
    assert request.billable("gpt-4o-mini", 5) == plain.billable("gpt-4o-mini", 5)
