"""The request log of the real server process: with `log_format: json` every line it writes is a
JSON object and each request has one line with its fields; in text, a request's hostile id or
model cannot split the line or add fields; by default (`request_log: false`) or at --log-level
warning: no line."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from tests.conftest import Gateway, fake_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.observe.test_request_log import parse_text

MARKER = "okapi-prompt-9003"


def _request_lines(gw: Gateway, count: int, present: str = "parrotrouter.requests") -> list[str]:
    deadline = time.time() + 10
    while True:
        lines = [line for line in gw.output().splitlines() if present in line]
        if len(lines) >= count or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_json_lines(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k",
                                                                "PARROTROUTER_LOG_FORMAT": "json",
                                                                "PARROTROUTER_REQUEST_LOG": "true"}).start()
    answer = gw.client().with_options(default_headers={"X-Request-Id": "rid-json-1"}).chat.completions.create(
        model="mini", messages=[{"role": "user", "content": MARKER}])
    stream = gw.client().chat.completions.create(model="gpt-4o-mini", stream=True,
                                                 messages=[{"role": "user", "content": MARKER}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    _request_lines(gw, 2)
    gw.stop()
    output = gw.output()
    logged = output[output.index("\n{") + 1:]  # after the start-up banner (stdout, for people)
    lines = [json.loads(line) for line in logged.splitlines()]  # every log line is JSON
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    requests = [line for line in lines if line["logger"] == "parrotrouter.requests"]
    assert len(requests) == 2
    first = next(r for r in requests if r["request_id"] == "rid-json-1")
    assert first["generation_id"] == answer.id and first["model"] == "mini" and first["served_model"] == "gpt-4o-mini"
    assert first["provider"] == "fake" and first["deployment"] == "fake/gpt-4o-mini" and first["status"] == 200
    assert answer.usage is not None and first["prompt_tokens"] == answer.usage.prompt_tokens
    assert first["cost_usd"] > 0 and first["attempt_count"] == 1 and first["attempts"] == ["fake/gpt-4o-mini/200"]
    streamed = next(r for r in requests if r is not first)
    assert streamed["streamed"] is True and streamed["ttft_ms"] is not None and streamed["completion_tokens"] > 0
    assert MARKER not in gw.output() and "sk-" not in gw.output()


def test_json_lines_survive_non_utf8_headers(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    """A header with non-UTF-8 bytes (aiohttp decodes them as surrogates) in the access log: still
    one JSON line, never a "--- Logging error ---" traceback instead."""
    gw: Gateway = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k",
                                                                "PARROTROUTER_LOG_FORMAT": "json",
                                                                "PARROTROUTER_ACCESS_LOG": "true"}).start()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nUser-Agent: evil\xff-agent\r\n\r\n")
        while sock.recv(65536):
            pass
    access = _request_lines(gw, 1, "aiohttp.access")
    gw.stop()
    output = gw.output()
    assert "Logging error" not in output and "Traceback" not in output
    logged = output[output.index("\n{") + 1:]
    lines = [json.loads(line) for line in logged.splitlines()]  # every log line is JSON
    assert access and any("evil" in line["message"] and "-agent" in line["message"]
                          for line in lines if line["logger"] == "aiohttp.access")


def test_hostile_values_in_text_lines(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gateway: Gateway = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k",
                                                                     "PARROTROUTER_REQUEST_LOG": "true"}).start()
    model = 'gpt\n2026-12-07 INFO parrotrouter.requests[1]: request status=200 cost_usd=0'
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", headers={"X-Request-Id": 'rid"text=x'},
                         json={"model": model, "messages": [{"role": "user", "content": MARKER}]})
    assert resp.status_code in (400, 404)
    [line] = _request_lines(gateway, 1, 'rid\\"text')
    fields = parse_text(line)
    assert fields["request_id"] == 'rid"text=x' and fields["model"] == model
    assert fields["status"] == str(resp.status_code)
    assert not any(line.startswith("2026-12-07 INFO") for line in gateway.output().splitlines())


def test_no_request_lines_when_off(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    for env, args in (({}, []), ({"PARROTROUTER_REQUEST_LOG": "true"}, ["--log-level", "warning"])):
        gw: Gateway = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k", **env}, args=args).start()
        gw.client().chat.completions.create(model="mini", messages=[{"role": "user", "content": "hi"}])
        gw.stop()
        assert "parrotrouter.requests" not in gw.output()
