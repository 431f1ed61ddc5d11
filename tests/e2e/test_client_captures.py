"""Every request the real clients were recorded sending (tests/data/clients/, see
tests/clients/capture.py), replayed to the gateway — same path, headers and body, only the key and the
model changed — on a model behind each upstream format: each is answered in full, in the client's
own format, and billed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.gateway import AGENT, gw, new_key, upstreams, usage
from tests.conftest import Gateway

__all__ = ["gw", "upstreams"]  # module fixtures

CAPTURES = Path(__file__).resolve().parent.parent / "data" / "clients"
RECORDED = [(path.stem, i, request) for path in sorted(CAPTURES.glob("*.json"))
            for i, request in enumerate(json.loads(path.read_text()))]
HOP_BY_HOP = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}
LAST_EVENT = {"/v1/messages": "message_stop", "/v1/responses": "response.completed"}


def replayed_headers(recorded: dict[str, str], key: str) -> dict[str, str]:
    out = {k: v for k, v in recorded.items() if k not in HOP_BY_HOP}
    for name, value in (("authorization", f"Bearer {key}"), ("x-api-key", key)):
        if name in out:
            out[name] = value
    return out


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


# Each request on a model behind an Anthropic-format and a Chat Completions upstream; Responses
# requests also on one that speaks the Responses API natively.
CASES = [(upstream, capture, index, request_) for capture, index, request_ in RECORDED
         for upstream in ("anthropic", "openai", "responses")
         if upstream != "responses" or request_["path"].startswith("/v1/responses")]


@pytest.mark.parametrize(("upstream", "capture", "index", "request_"), CASES,
                         ids=[f"{c}-{i}-{u}" for u, c, i, _ in CASES])
def test_recorded_request_is_served(gw: Gateway, upstream: str, capture: str, index: int,
                                    request_: dict[str, Any]) -> None:
    key = new_key(gw)
    body = {**request_["body"], "model": AGENT[upstream]}
    got = httpx.request(request_["method"], gw.url + request_["path"], content=json.dumps(body).encode(),
                        headers=replayed_headers(request_["headers"], key), timeout=30)
    if capture == "codex_responses_lite" and upstream != "responses":  # README: only native serving takes it
        assert got.status_code == 400 and "'additional_tools' (input[0])" in got.json()["error"]["message"], got.text
        return
    assert got.status_code == 200, got.text[:2000]
    route = request_["path"].split("?")[0]
    if body.get("stream"):
        events = sse_events(got.text)
        assert events and events[-1]["type"] == LAST_EVENT[route], events[-3:]
    else:
        assert got.json()["type" if route == "/v1/messages" else "object"] in ("message", "response")
    usage(gw, key, requests=1)
