"""Start-up, zero-config, CLI behaviour, cancellation and connection reuse, with real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.conftest import MASTER_KEY, REPO, Gateway, fake_config
from tests.fakes.openai_upstream import ANSWER, FakeOpenAI


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "parrotrouter", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=REPO)


def test_help_texts() -> None:
    out = run_cli("--help").stdout
    assert "serve" in out and "config" in out
    serve = run_cli("serve", "--help").stdout
    for flag in ("--host", "--port", "--config", "--workers", "PARROTROUTER_PORT"):
        assert flag in serve


def test_first_start_prints_master_key_once(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k"})
    del gw.env["PARROTROUTER_MASTER_KEY"]
    gw.start()
    out = gw.output()
    keys = [w for w in out.split() if w.startswith("pr-")]
    assert len(keys) == 1, out
    key = keys[0]
    assert len(key) >= 3 + 32
    assert f"http://127.0.0.1:{gw.port}/v1" in out and "gpt-4o-mini" in out
    stored = (gw.home / "master_key.json").read_text()
    assert key not in stored and key[3:20] not in stored
    resp = gw.client(key).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert resp.choices[0].message.content == ANSWER
    gw.stop()
    gw.proc = None
    gw.start()
    assert gw.output().count("pr-") == 1  # the key is not shown again
    with pytest.raises(openai.AuthenticationError):
        gw.client("pr-" + "x" * 43).models.list()
    assert gw.client(key).models.list().data


def test_zero_config_from_environment(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(None, env={"OPENAI_API_KEY": "sk-env-key", "OPENAI_BASE_URL": fake_upstream.base_url})
    gw.start()
    client = gw.client()
    ids = {m.id for m in client.models.list().data}
    assert {"gpt-4o-mini", "gpt-4o", "gpt-4.1"} <= ids
    for name in ("gpt-4o-mini", "openai/gpt-4o-mini"):
        resp = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
        assert resp.model == "gpt-4o-mini" and resp.model_extra["provider"] == "openai"
    assert fake_upstream.headers[-1]["Authorization"] == "Bearer sk-env-key"
    pricing = client.models.retrieve("gpt-4o-mini").model_extra["pricing"]
    assert pricing["prompt"] > 0 and pricing["completion"] > pricing["prompt"]


BAD_CONFIG = """
providers:
  - name: up
    type: openai
    api_key: sk-inline-secret
    timeouts: {connect: -1}
  - name: up
    type: martian
models:
  - id: m1
    deployments: []
  - id: m2
    aliases: [m1]
    deployments: [{provider: ghost, weight: 0}]
"""


def test_config_check_reports_every_problem_with_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = run_cli("config", "check", str(path))
    assert result.returncode == 1
    err = result.stderr
    for where in ("providers[0].api_key", "providers[0].timeouts.connect", "providers[1].type",
                  "models[0].deployments", "models[1].deployments[0].weight"):
        assert where in err, err
    assert "sk-inline-secret" not in err
    serve = run_cli("serve", "--config", str(path), "--port", "1", env={"PARROTROUTER_HOME": str(tmp_path)})
    assert serve.returncode == 2 and "providers[0].api_key" in serve.stderr


def test_config_check_cross_references(tmp_path: Path) -> None:
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump({"env_providers": False, "providers": [
        {"name": "a", "type": "openai", "base_url": "http://127.0.0.1:1/v1"},
        {"name": "a", "type": "openai"}],
        "models": [{"id": "x", "deployments": [{"provider": "nope"}]},
                   {"id": "x", "deployments": [{"provider": "a"}]}]}))
    err = run_cli("config", "check", str(path)).stderr
    assert "providers[1].name: duplicate provider name 'a'" in err
    assert "models[0].deployments[0].provider: unknown provider 'nope'" in err
    assert "models[1].id: 'x' is already used" in err
    assert "providers[1].base_url" in err
    bad_yaml = tmp_path / "broken.yaml"
    bad_yaml.write_text("providers: [\n  - {name: a\n")
    assert "line " in run_cli("config", "check", str(bad_yaml)).stderr
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"env_providers": False, "providers": [
        {"name": "a", "type": "openai", "base_url": "http://127.0.0.1:1/v1", "api_key": {"$env": "HOME"}}],
        "models": [{"id": "x", "deployments": [{"provider": "a"}]}]}))
    ok = run_cli("config", "check", str(good))
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_health_and_ready(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        assert http.get("/health").json() == {"status": "ok"}
        ready = http.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["providers"] == {"fake": True}


async def test_client_disconnect_cancels_upstream(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    before = fake_upstream.disconnects
    async with gateway.async_client() as client:
        stream = await client.chat.completions.create(model="fake-paced", stream=True,
                                                      messages=[{"role": "user", "content": "x"}])
        async for _chunk in stream:
            break
        await stream.close()
    for _ in range(50):
        if fake_upstream.disconnects > before:
            break
        await asyncio.sleep(0.05)
    assert fake_upstream.disconnects > before


def test_non_stream_disconnect_cancels_upstream(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    before = fake_upstream.disconnects
    with pytest.raises(openai.APITimeoutError):
        gateway.client(timeout=0.3).chat.completions.create(model="fake-stall",
                                                            messages=[{"role": "user", "content": "x"}])
    deadline = time.time() + 3
    while fake_upstream.disconnects <= before and time.time() < deadline:
        time.sleep(0.05)
    assert fake_upstream.disconnects > before


def test_stale_pooled_connection_is_not_user_visible(make_gateway: Any) -> None:
    """An upstream that closes idle keep-alive connections quickly (like uvicorn's 5 s default)."""
    fake = FakeOpenAI(keepalive_timeout=0.2).start()
    try:
        gw: Gateway = make_gateway(fake_config(fake), env={"FAKE_UPSTREAM_KEY": "k"}).start()
        client = gw.client()
        for _ in range(4):
            resp = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
            assert resp.choices[0].message.content == ANSWER
            time.sleep(0.3)
    finally:
        fake.stop()


def test_workers_share_the_port(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k"}, args=["--workers", "2"])
    gw.start()
    client = gw.client()
    for _ in range(6):
        assert client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).choices[0].message.content == ANSWER
    assert gw.stop() == 0


def test_master_key_from_environment_only(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(fake_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k"}).start()
    assert "pr-" not in gw.output()  # PARROTROUTER_MASTER_KEY given: nothing generated
    assert not (gw.home / "master_key.json").exists()
    assert gw.client(MASTER_KEY).models.list().data


def test_an_unreachable_database_fails_the_start_with_one_clear_line(tmp_path: Path) -> None:
    """The schema migration (in a forked child) cannot reach the database: the start fails with
    exit code 1 and a one-line reason, no traceback, no password, and nothing is served."""
    serve = run_cli("serve", "--port", "18979", env={
        "PARROTROUTER_HOME": str(tmp_path),
        "PARROTROUTER_DATABASE_URL": "postgresql://someone:hunter2secret@127.0.0.1:1/nowhere"})
    assert serve.returncode == 1, serve.stderr
    assert "database" in serve.stderr and "could not be brought up to date" in serve.stderr, serve.stderr
    assert "Traceback" not in serve.stderr and "hunter2secret" not in serve.stderr + serve.stdout
    assert "Serving" not in serve.stderr + serve.stdout
