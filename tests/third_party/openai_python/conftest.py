"""Runs openai-python's own generated API tests (vendored beside this file, byte-identical: see
README.md) against the real gateway, instead of against their mock server.

This replaces openai-python's `tests/conftest.py`, which points the SDK at `TEST_API_BASE_URL` with a
made-up key. Here the `client` and `async_client` fixtures (same names, same indirect parameters:
`False`/`True` = loose/strict response validation, `{"http_client": "aiohttp"}`) talk to a
`parrotrouter serve` started with zero configuration: no config file, only `OPENAI_API_KEY` and
`OPENAI_BASE_URL`, the latter a fake OpenAI account (tests/fakes/openai_account.py) on loopback.

Keys: `models.delete` deletes a fine-tuned model at the provider, which only the gateway's admin (the
master key) may do, so the models tests use the master key; chat and completions tests use an
ordinary key created through `POST /v1/keys`, with credits, as an application would.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI, DefaultAioHttpClient, DefaultAsyncHttpx2Client, DefaultHttpx2Client, OpenAI

from tests.conftest import MASTER_KEY, Gateway
from tests.fakes.openai_account import FakeOpenAIAccount

HERE = Path(__file__).resolve().parent

# The vendored tests import their helpers as `tests.utils` (openai-python's own tests package); in this
# repository that module lives beside this file. Asserts in it are rewritten, as their conftest asks.
pytest.register_assert_rewrite(f"{__package__}.utils")
_utils = importlib.import_module(f"{__package__}.utils")
if sys.modules.setdefault("tests.utils", _utils) is not _utils:
    raise RuntimeError("tests.utils exists in this repository: it would shadow openai-python's vendored helpers")

# Modules that call admin endpoints (DELETE /v1/models/{model}) run with the master key.
ADMIN_MODULES = {"test_models"}


@pytest.fixture(scope="session")
def sdk_upstream() -> Iterator[FakeOpenAIAccount]:
    fake = FakeOpenAIAccount().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def sdk_gateway(sdk_upstream: FakeOpenAIAccount, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("openai-python"), None,
                      env={"OPENAI_API_KEY": "sk-fake-openai-account", "OPENAI_BASE_URL": sdk_upstream.base_url})
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def sdk_key(request: pytest.FixtureRequest, sdk_gateway: Gateway) -> str:
    if request.module.__name__.rsplit(".", 1)[-1] in ADMIN_MODULES:
        return MASTER_KEY
    # Credits for the worst case the gateway reserves: their requests set `max_tokens: 0` (no cap) for a model
    # with a 1M-token window, so each holds tens of dollars while it runs, and a stream the test closed early
    # still holds its reservation until the gateway has finished it.
    with sdk_gateway.http() as http:
        created = http.post("/v1/keys", json={"name": f"openai-python {request.module.__name__}", "credits": "100000"})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


@pytest.fixture(scope="module")
def client(request: pytest.FixtureRequest, sdk_gateway: Gateway, sdk_key: str) -> Iterator[OpenAI]:
    strict = getattr(request, "param", True)
    if not isinstance(strict, bool):
        raise TypeError(f"Unexpected fixture parameter type {type(strict)}, expected {bool}")
    with OpenAI(base_url=sdk_gateway.base_url, api_key=sdk_key, max_retries=0,
                _strict_response_validation=strict, http_client=DefaultHttpx2Client()) as sdk:
        yield sdk


@pytest.fixture(scope="module")
async def async_client(request: pytest.FixtureRequest, sdk_gateway: Gateway,
                       sdk_key: str) -> AsyncIterator[AsyncOpenAI]:
    param: Any = getattr(request, "param", True)
    strict = param if isinstance(param, bool) else param.get("strict", True)
    if not isinstance(strict, bool):
        raise TypeError(f"Unexpected fixture parameter {param!r}")
    http_client: httpx2.AsyncClient = (
        DefaultAioHttpClient() if isinstance(param, dict) and param.get("http_client") == "aiohttp"
        else DefaultAsyncHttpx2Client())
    async with AsyncOpenAI(base_url=sdk_gateway.base_url, api_key=sdk_key, max_retries=0,
                           _strict_response_validation=strict, http_client=http_client) as sdk:
        yield sdk


# openai-python's tests of stored chat completions address a fixed id, `completion_id`, that exists only
# on their mock server: the gateway's stored completions have the ids the gateway gave them when they
# were created (`chatcmpl-...`), so a real server answers 404 for it. The gateway's store itself is
# tested in tests/e2e/test_stored_chat_completions.py; these calls' shapes are what it answers there.
FIXED_ID_TESTS = re.compile(r"test_(method|raw_response|streaming_response)_(retrieve|update|delete)")
FIXED_ID_REASON = ("openai-python's test addresses the mock server's fixed id 'completion_id', which no real "
                   "server has (the gateway's stored completions: tests/e2e/test_stored_chat_completions.py)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (item.path.parent.name == "chat" and item.path.is_relative_to(HERE)
                and FIXED_ID_TESTS.fullmatch(getattr(item, "originalname", item.name))):
            item.add_marker(pytest.mark.skip(reason=FIXED_ID_REASON))
