"""The request log in process: one line per request once its record is completed, its fields in
JSON, and in text a line no caller's value can split or extend with fields of its own."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from parrotrouter.api.app import create_app
from parrotrouter.errors import FailureKind, UpstreamFailure
from parrotrouter.observe import Observers
from parrotrouter.observe.log_format import TEXT_FORMAT, Fields, JsonFormatter, text_value
from parrotrouter.observe.request_log import RequestLog
from tests.serving.world import Scripted, world

MARKER = "giraffe-prompt-5512"
USER = [{"role": "user", "content": MARKER}]
_PAIR = re.compile(r' ([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]+)')


def parse_text(line: str) -> dict[str, Any]:
    """A text request line back into its fields (quoted values are JSON strings)."""
    _, sep, rest = line.partition(": request")
    assert sep, line
    fields: dict[str, Any] = {}
    pos = 0
    while pos < len(rest):
        match = _PAIR.match(rest, pos)
        assert match, f"unparsable at {rest[pos:]!r}"
        key, value = match.groups()
        assert key not in fields, f"{key} twice in {line!r}"
        fields[key] = json.loads(value) if value.startswith('"') else value
        pos = match.end()
    return fields


async def _logged(caplog: pytest.LogCaptureFixture, requests: list[tuple[dict[str, str], dict[str, Any]]]
                  ) -> list[logging.LogRecord]:
    busy = UpstreamFailure("busy", kind=FailureKind.RATE_LIMIT, retry_after=30)
    state = world({"m": [Scripted("a", [busy]), Scripted("b")]})
    state.observers = Observers([RequestLog()], strict=True)
    caplog.set_level(logging.INFO, logger="parrotrouter.requests")
    async with TestClient(TestServer(create_app(state))) as http:
        for headers, body in requests:
            resp = await http.post("/v1/chat/completions", headers=headers, json=body)
            await resp.read()
        await state.observers.drain()
    return [r for r in caplog.records if r.name == "parrotrouter.requests"]


async def test_one_json_line_per_request_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    [record] = await _logged(caplog, [({"X-Request-Id": "req-42"}, {"model": "m", "messages": USER})])
    assert record.levelno == logging.INFO
    line = JsonFormatter().format(record)
    assert "\n" not in line and MARKER not in line
    out = json.loads(line)
    assert out["logger"] == "parrotrouter.requests" and out["level"] == "INFO" and out["message"] == "request"
    assert out["request_id"] == "req-42" and out["generation_id"].startswith("chatcmpl-")
    assert out["endpoint"] == "chat.completions" and out["model"] == out["served_model"] == "m"
    assert out["provider"] == "b" and out["deployment"] == "b/m" and out["status"] == 200
    assert out["prompt_tokens"] == 5 and out["completion_tokens"] == 2 and out["cost_usd"] > 0
    assert out["attempt_count"] == 2 and out["attempts"] == ["a/m/429/rate_limit", "b/m/200"]
    assert out["latency_ms"] >= 0 and out["streamed"] is False and out["error_code"] is None
    for key in ("key_id", "account_id", "cached_tokens", "reasoning_tokens", "ttft_ms", "ended_by", "finish_reason"):
        assert key in out


@pytest.mark.parametrize("request_id", ['a"b=c', "x\\y", "ok"])
async def test_a_text_line_cannot_be_split_or_extended(caplog: pytest.LogCaptureFixture, request_id: str) -> None:
    hostile = 'm\n2026-01-01 INFO parrotrouter.requests[1]: request status=200 key_id="admin"'
    records = await _logged(caplog, [({"X-Request-Id": request_id}, {"model": hostile, "messages": USER})])
    [record] = records
    line = logging.Formatter(TEXT_FORMAT).format(record)
    assert "\n" not in line and "\r" not in line and MARKER not in line
    fields = parse_text(line)
    assert fields["model"] == hostile and fields["request_id"] == request_id
    assert fields["status"] in ("400", "404")
    assert fields["key_id"] == "master"  # the hostile key_id did not get in (parse_text: no field twice)


def test_text_values() -> None:
    assert text_value("gpt-4o-mini") == "gpt-4o-mini"
    assert text_value("a b") == '"a b"'
    assert text_value("caf\u00e9\u2028") == '"caf\\u00e9\\u2028"'
    assert text_value(True) == "true" and text_value(3) == "3" and text_value(["a/1", "b/2"]) == "a/1,b/2"
    assert str(Fields("request", {"a": 1, "b": None, "c": "x=y"})) == 'request a=1 c="x=y"'


def test_every_record_is_one_json_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        record = logging.LogRecord("aiohttp.access", logging.ERROR, __file__, 1, "failed %s", ("x\ny",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "failed x\ny" and "ValueError: boom" in out["exception"]
    forged = logging.LogRecord("x", logging.INFO, __file__, 1, Fields("e", {"time": "forged", "k": 1}), None, None)
    out = json.loads(JsonFormatter().format(forged))
    assert out["time"] != "forged" and out["k"] == 1  # a field never replaces the line's own keys
