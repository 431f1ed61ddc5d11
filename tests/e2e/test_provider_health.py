"""Live provider health and performance, end to end: the real gateway, a real loopback upstream
that dies, slows down and fails, and (with Redis) two instances reporting one merged block."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway
from tests.e2e.test_rate_limits import REDIS_URL, need_redis
from tests.fakes.switchable_upstream import SwitchableOpenAI

UPSTREAM_KEY = "sk-upstream-probe-secret"


@pytest.fixture
def upstream() -> Iterator[SwitchableOpenAI]:
    fake = SwitchableOpenAI().start()
    yield fake
    fake.stop()


def config(fake: SwitchableOpenAI, model: str = "llama-local", **server: Any) -> dict[str, Any]:
    return {
        "server": {"health_probe_interval": 0.3, "health_probe_timeout": 1, "max_attempts": 1,
                   "breaker_failure_threshold": 10_000, **server},
        "env_providers": False,
        "providers": [{"name": "vllm", "type": "openai", "base_url": fake.base_url,
                       "api_key": {"$env": "VLLM_KEY"}, "timeouts": {"connect": 1, "total": 20}}],
        "models": [{"id": model, "deployments": [{"provider": "vllm", "model": "gpt-4o-mini"}],
                    "pricing": {"prompt": "0.15", "completion": "0.60"}}],
    }


def start(make_gateway: Callable[..., Gateway], cfg: dict[str, Any]) -> Gateway:
    return make_gateway(cfg, env={"VLLM_KEY": UPSTREAM_KEY}).start()


def model(gw: Gateway, name: str = "llama-local") -> dict[str, Any]:
    with gw.http() as http:
        found: dict[str, Any] = http.get(f"/v1/models/{name}").raise_for_status().json()
    return found


def until(what: str, check: Callable[[], Any], timeout: float = 15) -> Any:
    """Poll `check` until it returns something true (or fail saying `what`)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def chat(gw: Gateway, n: int, name: str = "llama-local", *, stream: bool = False) -> list[int]:
    statuses = []
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as http:
        for _ in range(n):
            body = {"model": name, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
            statuses.append(http.post("/v1/chat/completions", json=body).status_code)
    return statuses


def test_a_dead_upstream_is_inactive_until_it_returns(make_gateway: Callable[..., Gateway],
                                                      upstream: SwitchableOpenAI) -> None:
    gw = start(make_gateway, config(upstream, ready_min_healthy_providers=1))
    assert model(gw)["status"] == {"active": True, "message": "available"}
    with gw.http() as http:
        ready = http.get("/ready").json()
    assert ready["checks"]["provider_health"]["vllm"]["healthy"] is True
    assert ready["checks"]["provider_health"]["vllm"]["probe"] is True
    until("the gateway probes the upstream", lambda: upstream.probes >= 1)

    upstream.stop()
    status = until("status.active false", lambda: (s := model(gw)["status"])["active"] is False and s)
    assert "probe failed: connection refused" in status["message"]
    for secret in (UPSTREAM_KEY, str(upstream.port), "127.0.0.1", "http"):
        assert secret not in status["message"]
    with gw.http() as http:
        listed = http.get("/v1/models").json()["data"]
        assert "llama-local" not in [m["id"] for m in listed]  # active_only (the default) hides it
        everything = http.get("/v1/models", params={"active_only": "false"}).json()["data"]
        assert [m["status"]["active"] for m in everything if m["id"] == "llama-local"] == [False]
        ready_resp = http.get("/ready")
    assert ready_resp.status_code == 503
    checks = ready_resp.json()["checks"]
    assert checks["healthy_providers"] == {"healthy": 0, "required": 1}
    assert checks["provider_health"]["vllm"]["healthy"] is False

    upstream.start()
    until("status.active true again", lambda: model(gw)["status"]["active"])
    with gw.http() as http:
        until("/ready 200 again", lambda: http.get("/ready").status_code == 200)
    log = gw.output()
    assert log.count("provider vllm is unhealthy") == 1, log  # once per change, not once per probe
    assert log.count("provider vllm is healthy again") == 1
    assert UPSTREAM_KEY not in log


def test_cloud_endpoints_are_not_probed_unless_asked(make_gateway: Callable[..., Gateway],
                                                     upstream: SwitchableOpenAI) -> None:
    cfg = config(upstream)
    cfg["providers"][0]["health_check"] = {"probe": False}
    gw = start(make_gateway, cfg)
    with gw.http() as http:
        assert http.get("/ready").json()["checks"]["provider_health"]["vllm"]["probe"] is False
    upstream.stop()
    assert chat(gw, 1)[0] >= 500  # real traffic fails, but no probe says so (one failure opens no breaker)
    assert model(gw)["status"]["active"] is True
    assert upstream.probes == 0


def test_one_broken_model_leaves_the_other_models_of_its_provider_active(
        make_gateway: Callable[..., Gateway], upstream: SwitchableOpenAI) -> None:
    cfg = config(upstream, ready_min_healthy_providers=1, breaker_failure_threshold=2)
    cfg["models"].append({"id": "llama-broken", "deployments": [{"provider": "vllm", "model": "500"}]})
    gw = start(make_gateway, cfg)
    assert chat(gw, 2, "llama-broken") == [502, 502]  # the only traffic so far: its breaker opens
    broken = model(gw, "llama-broken")["status"]
    assert broken["active"] is False and "deployment 'vllm/500' circuit breaker open" in broken["message"]
    assert model(gw)["status"] == {"active": True, "message": "available"}  # never called, still usable
    with gw.http() as http:
        listed = [m["id"] for m in http.get("/v1/models").json()["data"]]
        ready = http.get("/ready")
    assert listed == ["llama-local"]
    assert ready.status_code == 200
    vllm = ready.json()["checks"]["provider_health"]["vllm"]
    assert vllm["healthy"] is True and vllm["open_circuits"] == 1
    assert chat(gw, 1) == [200]


def test_a_health_url_elsewhere_gets_no_key_or_headers(make_gateway: Callable[..., Gateway],
                                                       upstream: SwitchableOpenAI) -> None:
    elsewhere = SwitchableOpenAI().start()  # same host, another port: another origin
    try:
        cfg = config(upstream)
        cfg["providers"][0]["headers"] = {"X-Team-Token": "team-secret"}
        cfg["providers"][0]["health_check"] = {"url": elsewhere.base_url + "/models"}
        gw = start(make_gateway, cfg)
        until("the gateway probes the health URL", lambda: elsewhere.probes >= 1)
        with gw.http() as http:
            assert http.get("/ready").json()["checks"]["provider_health"]["vllm"]["healthy"] is True
        sent = elsewhere.probe_headers[0]
        assert {"authorization", "x-team-token"}.isdisjoint(name.lower() for name in sent), sent
        assert UPSTREAM_KEY not in str(sent) and upstream.probes == 0
    finally:
        elsewhere.stop()


def test_a_configured_probe_path_must_answer_2xx(make_gateway: Callable[..., Gateway],
                                                 upstream: SwitchableOpenAI) -> None:
    cfg = config(upstream)
    cfg["providers"][0]["health_check"] = {"path": "/health"}  # the fake has no /v1/health: 404
    gw = start(make_gateway, cfg)
    status = until("a 404 probe counts", lambda: (s := model(gw)["status"])["active"] is False and s)
    assert "probe failed: HTTP 404" in status["message"]


def test_performance_follows_latency_and_errors(make_gateway: Callable[..., Gateway],
                                               upstream: SwitchableOpenAI) -> None:
    gw = start(make_gateway, config(upstream))
    assert model(gw)["performance"] is None  # no traffic yet

    assert chat(gw, 4) + chat(gw, 2, stream=True) == [200] * 6
    fast = until("6 requests counted", lambda: (p := model(gw)["performance"]) and p["requests"] == 6 and p)
    assert fast["success_rate"] == 1.0 and fast["window_seconds"] == 300
    assert fast["latency_p50_ms"] < 200
    assert fast["ttft_p50_ms"] is not None and fast["tokens_per_second"] > 0

    upstream.delay = 0.4
    assert chat(gw, 10) == [200] * 10
    slow = until("16 requests counted", lambda: (p := model(gw)["performance"]) and p["requests"] == 16 and p)
    assert slow["latency_p50_ms"] >= 300 > fast["latency_p50_ms"]
    assert slow["latency_p95_ms"] >= slow["latency_p50_ms"]

    upstream.delay, upstream.failing = 0.0, True
    assert set(chat(gw, 4)) == {502}
    failing = until("20 requests counted", lambda: (p := model(gw)["performance"]) and p["requests"] == 20 and p)
    assert failing["success_rate"] == 0.8
    with gw.http() as http:
        assert http.get("/ready").json()["checks"]["provider_health"]["vllm"]["success_rate"] == 0.8


def test_two_instances_report_one_merged_block_through_redis(make_gateway: Callable[..., Gateway],
                                                            upstream: SwitchableOpenAI) -> None:
    need_redis()
    name = f"perf-{uuid.uuid4().hex[:12]}"  # its own counters, whoever else uses this Redis
    cfg = config(upstream, model=name, redis_url=REDIS_URL, accounting=False)
    first, second = start(make_gateway, cfg), start(make_gateway, cfg)
    assert chat(first, 3, name) == [200] * 3
    assert chat(second, 2, name) == [200] * 2
    block = until("both report 5", lambda: (a := model(first, name)["performance"]) and a["requests"] == 5
                  and a == model(second, name)["performance"] and a)
    assert block["success_rate"] == 1.0
