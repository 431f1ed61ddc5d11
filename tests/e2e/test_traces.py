"""Traces from the real server process to a real OTLP/HTTP receiver on loopback, with the real
fake upstream: a request span continuing the client's trace, an attempt span per upstream call
(a failover shows two), each upstream call carrying its attempt span's traceparent. Tracing off,
the client's valid traceparent still reaches the upstream unchanged and none is invented."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Gateway, fake_config
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.otlp_receiver import OTLPReceiver

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
SERVER, CLIENT = 2, 3  # OTLP span kinds
ERROR = 2  # OTLP status code
_marks = itertools.count()


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    otlp = OTLPReceiver().start()
    yield otlp
    otlp.stop()


def _config(fake: FakeOpenAI) -> dict[str, Any]:
    config = fake_config(fake)
    config["models"].append({"id": "chain", "strategy": "priority", "pricing": {"prompt": "0.15", "completion": "0.60"},
                             "deployments": [{"provider": "fake", "model": "fake-500"},
                                             {"provider": "fake", "model": "gpt-4o-mini"}]})
    return config


def _upstream_headers(fake: FakeOpenAI, mark: str) -> list[dict[str, str]]:
    """The headers of the upstream calls made for the request whose prompt holds `mark`."""
    return [h for body, h in zip(fake.requests, fake.headers, strict=False) if mark in str(body.get("messages"))]


@pytest.mark.parametrize(("variable", "service"), [("OTEL_EXPORTER_OTLP_ENDPOINT", None),
                                                   ("PARROTROUTER_OTLP_ENDPOINT", "edge-gateway")])
def test_spans_reach_an_otlp_receiver(make_gateway: Any, fake_upstream: FakeOpenAI, receiver: OTLPReceiver,
                                      variable: str, service: str | None) -> None:
    env = {"FAKE_UPSTREAM_KEY": "k", variable: receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=abc123"}
    if service:
        env["OTEL_SERVICE_NAME"] = service
    gw: Gateway = make_gateway(_config(fake_upstream), env=env).start()
    mark = f"trace-mark-{next(_marks)}"
    answer = gw.client().chat.completions.create(
        model="chain", messages=[{"role": "user", "content": mark}], max_tokens=20,
        extra_headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc"})
    spans = receiver.wait_for(3)
    [request] = [s for s in spans if s.kind == SERVER]
    attempts = [s for s in spans if s.kind == CLIENT]
    assert len(attempts) == 2

    assert request.resource["service.name"] == (service or "parrotrouter")
    assert receiver.headers[0]["x-collector-key"] == "abc123"  # the standard OTEL_* variables hold
    assert request.trace_id == TRACE and request.parent_span_id == PARENT
    assert request.name == "chat chain"
    attrs = request.attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "chain"
    assert attrs["gen_ai.response.model"] == "chain" and attrs["gen_ai.response.id"] == answer.id
    assert attrs["gen_ai.provider.name"] == "openai" and attrs["gen_ai.request.max_tokens"] == 20
    assert answer.usage is not None
    assert attrs["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens
    assert attrs["parrotrouter.cost_usd"] > 0 and attrs["parrotrouter.attempts"] == 2
    assert attrs["parrotrouter.key_id"] and "pr-" not in str(attrs)  # the key's id, never the key
    assert mark not in str([s.attributes for s in spans])  # never the prompt

    by_deployment = {s.attributes["parrotrouter.deployment"]: s for s in attempts}
    failed, served = by_deployment["fake/fake-500"], by_deployment["fake/gpt-4o-mini"]
    for span in attempts:
        assert span.trace_id == TRACE and span.parent_span_id == request.span_id
        assert span.attributes["gen_ai.provider.name"] == "openai"
        assert span.attributes["server.address"] == "127.0.0.1"
    assert failed.name == "chat fake-500" and failed.status_code == ERROR
    assert failed.attributes["error.type"] == "server_error"
    assert failed.attributes["parrotrouter.attempt.status"] == 502
    assert served.status_code != ERROR and served.attributes["parrotrouter.attempt.status"] == 200

    # each upstream call carried its own attempt span as the parent, and the client's tracestate
    sent = _upstream_headers(fake_upstream, mark)
    expected = [f"00-{TRACE}-{span.span_id}-01" for span in (failed, served)]
    assert [h.get("traceparent") for h in sent] == expected
    assert {h.get("tracestate") for h in sent} == {"vendor=abc"}


def test_tracing_off_forwards_the_client_traceparent_only(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    client = gateway.client()
    cases = [({"traceparent": TRACEPARENT}, TRACEPARENT), ({}, None),
             ({"traceparent": f"00-{TRACE}-{'0' * 16}-01"}, None),
             ({"traceparent": "00-" + TRACE.upper() + f"-{PARENT}-01"}, None)]
    for headers, expected in cases:
        mark = f"trace-mark-{next(_marks)}"
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": mark}],
                                       extra_headers=headers)
        [sent] = _upstream_headers(fake_upstream, mark)
        assert sent.get("traceparent") == expected
        assert "tracestate" not in sent
