"""`/v1/models` in process: retired models hidden unless `include_retired=true` (and always
retrievable by id), the docs' provider slugs, `pricing.source`."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from parrotrouter.api.app import create_app
from tests.serving.world import Scripted, world


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    state = world({"current": [Scripted("gemini")], "old": [Scripted("openai")]}, performance="false")
    models = state.catalog.models
    models["old"] = dataclasses.replace(models["old"], retired=True)
    models["current"] = dataclasses.replace(models["current"], price_source="table")
    async with TestClient(TestServer(create_app(state))) as http:
        yield http


async def ids(client: TestClient, **params: str) -> list[str]:
    resp = await client.get("/v1/models", params={"active_only": "false", **params})
    assert resp.status == 200, await resp.text()
    return [m["id"] for m in (await resp.json())["data"]]


async def test_retired_models_are_hidden_by_default(client: TestClient) -> None:
    assert await ids(client) == ["current"]
    assert await ids(client, include_retired="true") == ["current", "old"]
    one = await client.get("/v1/models/old")
    assert one.status == 200 and (await one.json())["retired"] is True


async def test_provider_slugs_of_the_docs(client: TestClient) -> None:
    assert await ids(client, provider="google") == await ids(client, provider="gemini") == ["current"]
    assert await ids(client, provider="nobody\x00" + "x" * 2000) == []


async def test_pricing_carries_its_source(client: TestClient) -> None:
    resp = await client.get("/v1/models/current")
    assert (await resp.json())["pricing"]["source"] == "table"
