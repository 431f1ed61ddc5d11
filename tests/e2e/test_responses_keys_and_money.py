"""OpenAI's Responses API through the real gateway, as a hostile caller tries it: key permissions
that a native request must not slip past, and what a native upstream reads that the gateway must
count (reservation and billing of a stream that ends without the upstream's usage)."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.conftest import Gateway
from tests.e2e.responses_world import anthropic_fake, create_key, gw, ledger_row, sse_events
from tests.fakes.openai_upstream import FakeOpenAI

__all__ = ["anthropic_fake", "gw"]  # fixtures


def key_with(gw: Gateway, permissions: dict[str, Any]) -> str:
    return create_key(gw, permissions=permissions)


def test_hosted_tools_need_the_tools_feature(gw: Gateway) -> None:
    key = key_with(gw, {"features": ["chat", "streaming"]})
    with gw.http(key) as http:
        for model, tool in (("gpt-native", {"type": "web_search"}),
                            ("gpt-native", {"type": "mcp", "server_label": "x", "server_url": "https://x.example"}),
                            ("gpt-4o-mini", {"type": "function", "name": "f"})):
            resp = http.post("/v1/responses", json={"model": model, "input": "x", "tools": [tool]})
            assert resp.status_code == 403, (model, tool, resp.text)
            assert "tools" in resp.json()["error"]["message"]
        for model in ("gpt-native", "gpt-4o-mini"):  # a hosted tool a translated model never gets is left out
            resp = http.post("/v1/responses", json={"model": model, "input": "x", "tools": [{"type": "web_search"}]})
            assert resp.status_code == (403 if model == "gpt-native" else 200), resp.text


def test_images_only_a_native_upstream_sees_need_the_vision_feature(gw: Gateway) -> None:
    key = key_with(gw, {"features": ["chat"]})
    image = {"type": "input_image", "file_id": "file-abc"}
    screenshot = {"type": "computer_call_output", "call_id": "c1",
                  "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"}}
    with gw.http(key) as http:
        for item in ({"role": "user", "content": [image]}, screenshot):
            resp = http.post("/v1/responses", json={"model": "gpt-native", "input": [item]})
            assert resp.status_code == 403, (item, resp.text)
    with gw.http() as http:  # a key of the same account that may use images starts the conversation
        created = http.post("/v1/keys", json={"name": "vision", "account_id": account_of(gw, key)}).json()
    time.sleep(1.5)
    with gw.http(created["key"]) as http:
        first = http.post("/v1/responses", json={"model": "gpt-native",
                                                 "input": [{"role": "user", "content": [image]}]})
        assert first.status_code == 200, first.text
    with gw.http(key) as http:
        resp = http.post("/v1/responses", json={"model": "gpt-native", "input": "and?",
                                                "previous_response_id": first.json()["id"]})
        assert resp.status_code == 403, resp.text


def account_of(gw: Gateway, key: str) -> str:
    with gw.http() as http:
        keys = http.get("/v1/keys").json()["data"]
    return str(next(k["account_id"] for k in keys if key.startswith(k["prefix"])))


def test_untranslated_items_a_native_upstream_reads_are_billed(gw: Gateway) -> None:
    """A stream that fails before the upstream's usage is billed by the gateway's count of the
    prompt: the text of items only the native upstream reads counts as much as a message's."""
    big = "word " * 20_000
    prompts = []
    with gw.http() as http:
        for item in ({"role": "user", "content": big},
                     {"type": "local_shell_call_output", "call_id": "c", "id": "lsh_1", "output": big}):
            resp = http.post("/v1/responses", json={"model": "native-failed", "stream": True,
                                                    "input": [{"role": "user", "content": "hi"}, item]})
            events = sse_events(resp.text)
            assert events[-1]["type"] == "response.failed"
            prompts.append(ledger_row(gw, events[-1]["response"]["id"])["prompt_tokens"])
    assert prompts[1] >= prompts[0] * 0.9, prompts


def test_items_only_a_native_upstream_takes_never_fall_back_to_a_translated_model(
        gw: Gateway, fake_upstream: FakeOpenAI) -> None:
    """A fallback model that is translated to chat would answer without them (an empty user
    message reached it): refused, whether the fallback is in the body or in X-Failover-Config."""
    item = {"type": "local_shell_call_output", "call_id": "c", "output": "the context"}
    sent = len(fake_upstream.requests)
    with gw.http() as http:
        for extra, headers in (({"models": ["native-500", "gpt-4o-mini"]}, {}),
                               ({}, {"X-Failover-Config": json.dumps({"primary": {"model": "native-500"},
                                                                      "fallbacks": [{"model": "gpt-4o-mini"}]})})):
            resp = http.post("/v1/responses", json={"model": "native-500", "input": [item], **extra}, headers=headers)
            assert resp.status_code == 400, resp.text
            assert "local_shell_call_output" in resp.json()["error"]["message"]
        assert len(fake_upstream.requests) == sent
        resp = http.post("/v1/responses", json={"model": "native-500", "input": "hi",
                                                "models": ["native-500", "gpt-4o-mini"]})
        assert resp.status_code == 200 and resp.json()["model"] == "gpt-4o-mini"  # all of it translates


def test_priority_processing_is_refused(gw: Gateway, fake_upstream: FakeOpenAI) -> None:
    """OpenAI bills `priority` (and `scale`) above the model's price the gateway charges."""
    with gw.http() as http:
        for model in ("gpt-native", "gpt-4o-mini"):
            for tier in ("priority", "scale"):
                resp = http.post("/v1/responses", json={"model": model, "input": "x", "service_tier": tier})
                assert resp.status_code == 400 and resp.json()["error"]["param"] == "service_tier", resp.text
            resp = http.post("/v1/responses", json={"model": model, "input": "x", "service_tier": "flex"})
            assert resp.status_code == 200, resp.text


def test_untranslated_items_are_reserved_for(gw: Gateway) -> None:
    """A budget that cannot pay for the prompt is refused whether the prompt is a message or an
    item only the native upstream reads."""
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "small", "credits": "0.002"})
    key = str(resp.json()["key"])
    time.sleep(1.5)
    big = "word " * 20_000  # 20,000 tokens: $0.003 at $0.15 a million
    with gw.http(key) as http:
        for item in ({"role": "user", "content": big},
                     {"type": "local_shell_call_output", "call_id": "c", "output": big}):
            resp = http.post("/v1/responses", json={"model": "gpt-native", "max_output_tokens": 16, "input": [item]})
            assert resp.status_code == 402, (item.get("type", "message"), resp.text[:300])
