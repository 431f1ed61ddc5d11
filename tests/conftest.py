"""Shared fixtures: a fake upstream on loopback, the real gateway as a subprocess, SDK clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.fakes.openai_upstream import FakeOpenAI

MASTER_KEY = "pr-test-master-key-0123456789abcdefghijklmnopqrstuvwxyz"
REPO = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))

FAKE_SCENARIOS = [
    "slow",
    "flaky",
    "error-first",
    "stall-first",
    "malformed-first",
    "cut-0",
    "tools",
    "429",
    "500",
    "503",
    "401",
    "400-context",
    "400-leaky",
    "stall",
    "slow-first-byte",
    "cut-3",
    "malformed",
    "error-in-stream",
    "stall-after-2",
    "no-usage",
    "paced",
    "hold",
    "paced-slow",
    "echo",
    "hostile-tools",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Variables that enable a provider whose models are discovered (local servers, a custom OpenAI URL,
# OpenRouter): a test gets only the ones it gives.
DISCOVERY_ENV = ("OPENAI_BASE_URL", "OPENROUTER_API_KEY", "OLLAMA_HOST", "LMSTUDIO_BASE_URL", "LM_STUDIO_BASE_URL",
                 "LM_STUDIO_API_BASE", "VLLM_BASE_URL", "LLAMACPP_SERVER_URL")


class Gateway:
    """The real `parrotrouter serve` process, on a free loopback port."""

    def __init__(self, home: Path, config: dict[str, Any] | None, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.config_path = home / "config.yaml"
        home.mkdir(parents=True, exist_ok=True)
        if config is not None:
            self.config_path.write_text(yaml.safe_dump(config))
        self.env = {**os.environ, "PARROTROUTER_HOME": str(home), "PARROTROUTER_MASTER_KEY": MASTER_KEY,
                    "PARROTROUTER_LOCAL_MODELS": "false", "PARROTROUTER_ACCOUNTING_STRICT": "true",
                    **(env or {})}
        for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "CO_API_KEY",
                    "COHERE_API_KEY", "CO_API_URL", *DISCOVERY_ENV):
            if var not in (env or {}):
                self.env.pop(var, None)
        for var in [v for v in self.env if v.startswith("AWS_") and v not in (env or {})]:
            self.env.pop(var)  # the AWS credential chain (Bedrock) sees only what a test gives
        for var in [v for v in self.env if v.startswith("OTEL_") and v not in (env or {})]:
            self.env.pop(var)  # traces are exported only where a test asks for them
        for var in ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION",
                    "AZURE_OPENAI_DEPLOYMENTS"):
            if var not in (env or {}):
                self.env.pop(var, None)
        self.args = args or []
        self._clients: list[openai.OpenAI] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self, wait: bool = True) -> Gateway:
        cmd = [sys.executable, "-m", "parrotrouter", "serve", "--port", str(self.port), *self.args]
        if self.config_path.exists():
            cmd += ["--config", str(self.config_path)]
        self._logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._logf, stderr=subprocess.STDOUT, cwd=REPO)
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.proc is None or self._logf.closed:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
        return self.proc.returncode

    def client(self, key: str = MASTER_KEY, **kw: Any) -> openai.OpenAI:
        """An SDK client, closed when the gateway stops."""
        client = openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, **kw)
        self._clients.append(client)
        return client

    def async_client(self, key: str = MASTER_KEY, **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key, max_retries=0, **kw)

    def http(self, key: str | None = MASTER_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def fake_config(fake: FakeOpenAI, **server: Any) -> dict[str, Any]:
    # Scenario models fail on purpose, again and again: keep their breakers out of other tests.
    server.setdefault("breaker_failure_threshold", 10_000)
    models = [{"id": "gpt-4o-mini", "aliases": ["mini"],
               "deployments": [{"provider": "fake", "model": "gpt-4o-mini"}],
               "context_length": 128000, "max_output_tokens": 16384,
               "pricing": {"prompt": "0.15", "completion": "0.60"},
               "capabilities": {"vision": True, "completion": True}}]
    models += [{"id": f"fake-{s}", "deployments": [{"provider": "fake", "model": f"fake-{s}"}],
                "pricing": {"prompt": "0.15", "completion": "0.60"}} for s in FAKE_SCENARIOS]
    return {
        "server": {k: v for k, v in server.items() if v is not None},
        "env_providers": False,
        "providers": [{"name": "fake", "type": "openai", "base_url": fake.base_url,
                       "api_key": {"$env": "FAKE_UPSTREAM_KEY"},
                       "timeouts": {"connect": 2, "first_token": 1.5, "idle": 1.5, "total": 20}}],
        "models": models,
    }


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gateway(fake_upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("gw"), fake_config(fake_upstream),
                 env={"FAKE_UPSTREAM_KEY": "sk-upstream-secret"}).start()
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Gateway]]:
    started: list[Gateway] = []

    def make(config: dict[str, Any] | None = None, **kw: Any) -> Gateway:
        gw = Gateway(tmp_path_factory.mktemp("gw"), config, **kw)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


PG_ADMIN_DSN = os.environ.get("PARROTROUTER_TEST_PG", "postgresql://root@127.0.0.1:5432/test")


def _pg_reachable() -> str | None:
    import asyncio

    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def fresh_pg_database() -> tuple[str, Callable[[], None]]:
    """A new, empty PostgreSQL database on the test server, and a function that drops it."""
    import asyncio
    import uuid

    import asyncpg

    problem = _pg_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_DSN} is unreachable under CI: {problem}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN_DSN} is unreachable: {problem}")
    name = "pr_test_" + uuid.uuid4().hex[:12]

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]

    def drop() -> None:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return f"{base}/{name}", drop


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each accounts test runs against SQLite and against the real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    url, drop = fresh_pg_database()
    yield url
    drop()
