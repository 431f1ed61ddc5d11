"""Rate limits end to end: headers, 429s, two processes on one Redis, TPM with streams, Redis outages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.conftest import IN_CI, Gateway, fake_config, free_port
from tests.fakes.openai_upstream import FakeOpenAI

USER = [{"role": "user", "content": "Say hello"}]
REDIS_URL = os.environ.get("PARROTROUTER_TEST_REDIS", "redis://127.0.0.1:6379/15")
HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-reset-after",
           "x-ratelimit-bucket", "x-ratelimit-policy")


def need_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable under CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")


def create_key(gw: Gateway, **permissions: Any) -> str:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "rl", "credits": "10", "permissions": permissions})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


@pytest.fixture
def limited_gw(make_gateway: Any, fake_upstream: FakeOpenAI) -> Gateway:
    return make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k"}).start()


def _clear_of_window_edge(window: int = 60, margin: float = 5.0) -> None:
    """Sliding-window counters weigh the previous window by its remaining fraction: a sequence
    that straddles a window edge is counted approximately (by design), so exact-count checks
    start well inside one window."""
    into = time.time() % window
    if into > window - margin:
        time.sleep(window - into + 0.05)


def test_exact_boundary_and_headers_on_every_response(limited_gw: Gateway) -> None:
    key = create_key(limited_gw, max_requests_per_minute=5)
    _clear_of_window_edge()
    with limited_gw.http(key) as http:
        seen = []
        for i in range(5):
            body = {"model": "gpt-4o-mini" if i != 2 else "fake-400-context", "messages": USER}
            resp = http.post("/v1/chat/completions", json=body)
            assert resp.status_code == (200 if i != 2 else 400)  # errors after admission carry them too
            assert all(h in resp.headers for h in HEADERS)
            seen.append(int(resp.headers["x-ratelimit-remaining"]))
        assert seen == [4, 3, 2, 1, 0]
        last = resp.headers
        assert last["x-ratelimit-limit"] == "5" and last["x-ratelimit-bucket"] == "rpm"
        assert last["x-ratelimit-policy"] == "5;w=60"
        assert abs(int(last["x-ratelimit-reset"]) - time.time() - int(last["x-ratelimit-reset-after"])) <= 2
        refused = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER})
        assert refused.status_code == 429
        err = refused.json()["error"]
        assert err["code"] == "rate_limit_exceeded" and err["status"] == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-remaining"] == "0"
        models = http.get("/v1/models")  # read endpoints report without taking
        assert models.status_code == 200 and models.headers["x-ratelimit-remaining"] == "0"
        stream = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER, "stream": True})
        assert stream.status_code == 429
    with limited_gw.http() as master:  # the master key has no limits: told so, never a 429
        resp = master.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER})
        assert resp.status_code == 200 and resp.headers["x-ratelimit-limit"] == "unlimited"


def test_stream_responses_carry_headers(limited_gw: Gateway) -> None:
    key = create_key(limited_gw, max_requests_per_minute=50)
    with limited_gw.http(key) as http, http.stream("POST", "/v1/chat/completions", json={
            "model": "gpt-4o-mini", "messages": USER, "stream": True}) as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["x-ratelimit-remaining"] == "49"
        assert b"".join(resp.iter_bytes()).endswith(b"data: [DONE]\n\n")


def test_sdk_sees_rate_limit_error_with_headers(limited_gw: Gateway) -> None:
    key = create_key(limited_gw, max_requests_per_minute=1)
    _clear_of_window_edge()
    client = limited_gw.client(key)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    assert raw.headers["x-ratelimit-remaining"] == "0" and raw.parse().choices
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    assert info.value.response.headers["x-ratelimit-bucket"] == "rpm"
    assert int(info.value.response.headers["retry-after"]) >= 1


def test_tpm_with_streaming_reconciles_to_real_usage(limited_gw: Gateway) -> None:
    key = create_key(limited_gw, max_tokens_per_minute=20_000)
    _clear_of_window_edge()
    client = limited_gw.client(key)
    used = 0
    for _ in range(2):
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                     max_tokens=3000, stream_options={"include_usage": True}))
        usage = chunks[-1].usage
        assert usage is not None
        used += usage.total_tokens
    time.sleep(0.3)  # reconciliation runs just after each answer
    with limited_gw.http(key) as http:
        headers = http.get("/v1/models").headers
    assert headers["x-ratelimit-bucket"] == "tpm"
    assert int(headers["x-ratelimit-remaining"]) == 20_000 - used
    with pytest.raises(openai.RateLimitError):  # a reservation above what is left is refused
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=25_000)


def test_user_field_limits(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(fake_config(fake_upstream, user_rate_limit_rpm=2),
                               env={"FAKE_UPSTREAM_KEY": "k"}).start()
    key = create_key(gw)
    client = gw.client(key)
    _clear_of_window_edge()
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, user="alice")
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, user="alice")
    assert info.value.response.headers["x-ratelimit-bucket"] == "user-rpm"
    assert client.chat.completions.create(model="gpt-4o-mini", messages=USER, user="bob").choices


def test_two_processes_share_one_limit_through_redis(make_gateway: Any, fake_upstream: FakeOpenAI,
                                                     tmp_path: Any) -> None:
    need_redis()
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    prefix_db = REDIS_URL.rsplit("/", 1)[0] + "/14"
    redis.Redis.from_url(prefix_db).flushdb()
    config = fake_config(fake_upstream, database_url=db, redis_url=prefix_db, key_refresh_seconds=0.3)
    a: Gateway = make_gateway(config, env={"FAKE_UPSTREAM_KEY": "k"}).start()
    key = create_key(a, max_requests_per_minute=5)
    b: Gateway = make_gateway(config, env={"FAKE_UPSTREAM_KEY": "k"})
    b.home = a.home  # same data directory: same server secret, so the same keys
    b.env["PARROTROUTER_HOME"] = str(a.home)
    b.start()
    statuses = []
    _clear_of_window_edge()
    for i in range(10):
        gw = a if i % 2 else b
        with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {key}"}) as http:
            statuses.append(http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER}
                                      ).status_code)
    assert statuses.count(200) == 5 and statuses.count(429) == 5, statuses


def _private_redis() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("private redis did not start")


@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_outage_mid_test(make_gateway: Any, fake_upstream: FakeOpenAI, fail_open: bool) -> None:
    proc, port = _private_redis()
    try:
        gw: Gateway = make_gateway(fake_config(fake_upstream, redis_url=f"redis://127.0.0.1:{port}/0",
                                               limits_fail_open=fail_open, redis_timeout=0.3),
                                   env={"FAKE_UPSTREAM_KEY": "k"}).start()
        key = create_key(gw, max_requests_per_minute=100)
        with gw.http(key) as http:
            assert http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER}).status_code == 200
            proc.send_signal(signal.SIGSTOP)  # a hung Redis: connections open, nothing answers
            began = time.time()
            resp = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER})
            assert time.time() - began < 2.0
            if fail_open:
                assert resp.status_code == 200 and "x-ratelimit-remaining" not in resp.headers
            else:
                assert resp.status_code == 503 and resp.json()["error"]["code"] == "service_unavailable"
            proc.send_signal(signal.SIGCONT)
            proc.kill()  # and then gone altogether
            proc.wait()
            began = time.time()
            resp = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER})
            assert time.time() - began < 2.0 and resp.status_code == (200 if fail_open else 503)
        with httpx.Client(base_url=gw.url) as http:
            ready = http.get("/ready")
        limits = ready.json()["checks"]["limits"]
        assert limits["ok"] is False and limits["degraded_decisions"] >= 2
        assert ready.status_code == (200 if fail_open else 503)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()


def test_workers_without_redis_refuse_configured_limits(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(fake_config(fake_upstream, rate_limit_rpm=60), env={"FAKE_UPSTREAM_KEY": "k"},
                               args=["--workers", "2"])
    gw.start(wait=False)
    assert gw.proc is not None and gw.proc.wait(30) == 2
    out = gw.output()
    assert "redis_url" in out and "PARROTROUTER_REDIS_URL" in out and "--workers 2" in out
