"""GET /metrics end to end: scripted traffic through the real server to the fake upstream, then the
scrape parsed with prometheus-client's own parser and the counts checked exactly; --workers 2;
who may scrape; hostile model names; metrics off; the Grafana dashboard's queries."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MASTER_KEY, REPO, Gateway, fake_config
from tests.fakes.openai_upstream import FakeOpenAI

DASHBOARD = REPO / "deploy" / "grafana" / "parrotrouter.json"
CHAT = "chat.completions"
MINI = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "Say hello."}]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_config(fake: FakeOpenAI, **server: Any) -> dict[str, Any]:
    config = fake_config(fake, **server)
    config["models"].append({"id": "chain", "strategy": "priority", "pricing": {"prompt": "0.15", "completion": "0.60"},
                             "deployments": [{"provider": "fake", "model": "fake-500"},
                                             {"provider": "fake", "model": MINI}]})
    return config


def scrape(gw: Gateway, key: str | None = MASTER_KEY) -> str:
    with gw.http(key) as http:
        resp = http.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return resp.text


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Family name -> type, and (sample name, sorted labels) -> value."""
    families, samples = {}, {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for s in family.samples:
            samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def chat(gw: Gateway, key: str | None = MASTER_KEY, **body: Any) -> httpx.Response:
    with gw.http(key) as http:
        return http.post("/v1/chat/completions", json={"model": MINI, "messages": HELLO, **body})


def create_key(gw: Gateway, **body: Any) -> str:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "metrics-test", **body})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


@pytest.fixture(scope="module")
def traffic_gw(fake_upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("metrics"), metrics_config(fake_upstream),
                 env={"FAKE_UPSTREAM_KEY": "k", "PARROTROUTER_METRICS_TOKEN": "metrics-token-0123456789"}).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def scripted(traffic_gw: Gateway) -> dict[str, Any]:
    """The scripted traffic, once; what the clients were told, for the counts to match."""
    gw = traffic_gw
    limited = create_key(gw, credits="100", permissions={"max_requests_per_minute": 1})
    broke = create_key(gw, credits="0")
    time.sleep(1.5)  # the keys reach the gateway's key cache
    told: dict[str, Any] = {"prompt": 0, "completion": 0}
    for key in (MASTER_KEY, MASTER_KEY, MASTER_KEY, limited):  # the limited key's first is admitted
        resp = chat(gw, key)
        assert resp.status_code == 200, resp.text
        told["prompt"] += resp.json()["usage"]["prompt_tokens"]
        told["completion"] += resp.json()["usage"]["completion_tokens"]
    stream = gw.client().chat.completions.create(model=MINI, messages=HELLO, stream=True,  # type: ignore[arg-type]
                                                 stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.usage:
            told["prompt"] += chunk.usage.prompt_tokens
            told["completion"] += chunk.usage.completion_tokens
    refused = chat(gw, limited)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    broke_resp = chat(gw, broke)
    assert broke_resp.status_code == 402 and broke_resp.json()["error"]["code"] == "insufficient_credits"
    failover = chat(gw, model="chain")
    assert failover.status_code == 200, failover.text
    failed = chat(gw, model="fake-500")
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "upstream_error"
    assert chat(gw, None).status_code == 401  # refused before the core
    with gw.http() as http:
        bad = http.post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    told["requests"] = 3 + 1 + 1 + 1 + 1 + 1 + 1  # every request the core recorded
    # The ledger wrote every row (and the observers heard of them all): counts are final.
    wait_for(lambda: value(parse(scrape(gw))[1], "parrotrouter_ledger_rows_written_total") == told["requests"])
    return told


def test_counts_after_scripted_traffic(traffic_gw: Gateway, scripted: dict[str, Any]) -> None:
    families, s = parse(scrape(traffic_gw))
    ok = {"endpoint": CHAT, "model": MINI, "provider": "fake", "status": "2xx", "error_code": "none"}
    assert value(s, "parrotrouter_requests_total", **ok) == 3 + 1 + 1  # 3 answers, a stream, the limited key's first
    assert value(s, "parrotrouter_requests_total", **{**ok, "model": "chain"}) == 1
    assert value(s, "parrotrouter_requests_total", **{**ok, "status": "4xx", "error_code": "rate_limit_exceeded"}) == 1
    assert value(s, "parrotrouter_requests_total", **{**ok, "status": "4xx", "error_code": "insufficient_credits"}) == 1
    assert value(s, "parrotrouter_requests_total",
                 **{**ok, "model": "fake-500", "status": "5xx", "error_code": "upstream_error"}) == 1
    assert total(s, "parrotrouter_requests_total") == scripted["requests"]
    assert total(s, "parrotrouter_request_duration_seconds_count") == scripted["requests"]
    assert value(s, "parrotrouter_rate_limit_refusals_total", endpoint=CHAT) == 1
    assert value(s, "parrotrouter_credit_refusals_total", endpoint=CHAT) == 1
    # Refused before the core, by route template: the missing key and the broken JSON.
    assert value(s, "parrotrouter_http_refused_total", route="/v1/chat/completions", status="4xx") == 2
    # Overhead: every request that reached an upstream (not the two refusals); TTFT: the one stream.
    assert total(s, "parrotrouter_gateway_overhead_seconds_count") == scripted["requests"] - 2
    assert value(s, "parrotrouter_gateway_overhead_seconds_count", endpoint=CHAT, streamed="true") == 1
    assert value(s, "parrotrouter_time_to_first_token_seconds_count", endpoint=CHAT, model=MINI, provider="fake") == 1
    # Attempts: fake-500 twice for the failing model (a retry) and once in the chain (then a failover).
    broken = {"provider": "fake", "deployment": "fake/fake-500"}
    assert value(s, "parrotrouter_upstream_attempts_total", **broken, outcome="server_error") == 3
    assert value(s, "parrotrouter_upstream_attempts_total", provider="fake", deployment="fake/gpt-4o-mini",
                 outcome="ok") == 6
    assert value(s, "parrotrouter_upstream_retries_total", **broken) == 1
    assert value(s, "parrotrouter_upstream_failovers_total", **broken) == 1
    # Tokens and cost, final: what the clients were told, and priced.
    assert value(s, "parrotrouter_tokens_total", model=MINI, provider="fake", type="prompt") == scripted["prompt"]
    assert value(s, "parrotrouter_tokens_total", model=MINI, provider="fake", type="completion") == \
        scripted["completion"]
    assert value(s, "parrotrouter_cost_usd_total", model=MINI, provider="fake") > 0
    # Gauges: no stream open, nothing left to write, every breaker closed (its threshold is huge).
    assert value(s, "parrotrouter_open_streams") == 0
    assert value(s, "parrotrouter_ledger_backlog_rows") == 0
    assert value(s, "parrotrouter_worker_processes") == 1
    assert value(s, "parrotrouter_circuit_breaker_state", **broken) == 0
    assert total(s, "parrotrouter_ledger_flush_seconds_count") >= 1
    assert families["parrotrouter_local_model_queue_depth"] == "gauge"


def test_who_may_scrape(traffic_gw: Gateway, make_gateway: Callable[..., Gateway],
                        fake_upstream: FakeOpenAI) -> None:
    gw = traffic_gw
    ordinary = create_key(gw, credits="1")
    time.sleep(1.5)
    with httpx.Client(base_url=gw.url) as http:
        missing = http.get("/metrics")
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
        wrong = http.get("/metrics", headers={"Authorization": "Bearer metrics-token-wrong"})
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
        forbidden = http.get("/metrics", headers={"Authorization": f"Bearer {ordinary}"})
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "permission_denied"
    scrape(gw)  # the master key
    scrape(gw, "metrics-token-0123456789")
    open_gw = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k",
                                                            "PARROTROUTER_METRICS_PUBLIC_NETWORKS": "127.0.0.0/8"})
    open_gw.start()
    assert "parrotrouter_requests" in scrape(open_gw, None)
    other = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k",
                                                          "PARROTROUTER_METRICS_PUBLIC_NETWORKS": "10.0.0.0/8"})
    other.start()
    with httpx.Client(base_url=other.url) as http:
        assert http.get("/metrics").status_code == 401


def _raw_scrape(gw: Gateway, header: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_non_utf8_token_is_refused_not_a_crash(traffic_gw: Gateway) -> None:
    """A token with non-UTF-8 bytes (aiohttp decodes them as surrogates) is a 401, never a 500."""
    for header in (b"Authorization: Bearer abc\xff", b"x-api-key: abc\xff",
                   b"Authorization: Bearer metrics-token-0123456789\xff"):
        status_line = _raw_scrape(traffic_gw, header).split(b"\r\n", 1)[0]
        assert b" 401 " in status_line, (header, status_line)
    assert "UnicodeEncodeError" not in traffic_gw.output()


def test_hostile_model_names_never_become_labels(traffic_gw: Gateway, scripted: dict[str, Any]) -> None:
    hostile = ['x"} 1\nparrotrouter_evil 1', "a" * 5000, "gpt-4o-mini\u202e", "../../etc/passwd", "{{model}}",
               "openai/gpt-4o-mini", "gpt-4o-mini\x00"]
    for model in hostile:
        resp = chat(traffic_gw, model=model)
        assert 400 <= resp.status_code < 500, resp.text
    text = scrape(traffic_gw)
    assert "evil" not in text and "aaaaaaaaaa" not in text and "passwd" not in text and "{{" not in text
    catalog = {MINI, "chain", "unknown", *(f"fake-{s}" for s in ("500",))}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.labels.get("model", "unknown") in catalog, sample
            assert len(sample.labels) <= 5 and all(len(v) <= 64 for v in sample.labels.values()), sample
    _, s = parse(text)
    assert total(s, "parrotrouter_requests_total", model="unknown") >= 1  # the ones that reached routing


def test_metrics_off(make_gateway: Callable[..., Gateway], fake_upstream: FakeOpenAI) -> None:
    gw = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k", "PARROTROUTER_METRICS": "false"})
    gw.start()
    assert chat(gw).status_code == 200
    with gw.http() as http:
        resp = http.get("/metrics")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def _workers(gw: Gateway) -> list[int]:
    assert gw.proc is not None
    children = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_two_workers_add_up(make_gateway: Callable[..., Gateway], fake_upstream: FakeOpenAI) -> None:
    gw = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k"}, args=["--workers", "2"])
    gw.start()
    wait_for(lambda: len(_workers(gw)) == 2)
    for _ in range(20):  # a new connection each: SO_REUSEPORT spreads them over both workers
        resp = httpx.post(gw.base_url + "/chat/completions", json={"model": MINI, "messages": HELLO},
                          headers={"Authorization": f"Bearer {MASTER_KEY}"})
        assert resp.status_code == 200, resp.text

    def counted(expected_workers: int) -> bool:
        _, s = parse(scrape(gw))
        return (total(s, "parrotrouter_requests_total") == 20
                and value(s, "parrotrouter_worker_processes") == expected_workers)

    wait_for(lambda: all(counted(2) for _ in range(6)))  # whichever worker answers the scrape
    _, s = parse(scrape(gw))
    assert value(s, "parrotrouter_requests_total", endpoint=CHAT, model=MINI, provider="fake", status="2xx",
                 error_code="none") == 20
    # A worker killed outright is restarted: its counts stay, its live gauges are dropped.
    victim = _workers(gw)[0]
    import os

    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in _workers(gw) and len(_workers(gw)) == 2, timeout=30)
    gw.wait_ready()
    wait_for(lambda: all(counted(2) for _ in range(6)), timeout=15)


def test_dashboard_queries_existing_metrics(traffic_gw: Gateway, scripted: dict[str, Any]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert any(v.get("type") == "datasource" for v in dashboard["templating"]["list"])
    families, _ = parse(scrape(traffic_gw))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    assert len(exprs) >= 12
    used = {name for e in exprs for name in re.findall(r"\bparrotrouter_[a-z_]+", e)}
    for name in used:
        family = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert family in families, f"the dashboard queries {name}, which /metrics does not have"
        if name.endswith("_total"):
            assert families[family] == "counter", name
        if name.endswith("_bucket"):
            assert families[family] == "histogram", name
    expected = {f for f in families if f.startswith("parrotrouter_")}
    missing = expected - {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert not missing, f"metrics without a panel: {missing}"
