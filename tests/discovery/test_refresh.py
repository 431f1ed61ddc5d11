"""Discovery over real loopback HTTP against fake servers answering the documented shapes, hostile
servers included, and the refresh loop swapping the catalog's models in place."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from parrotrouter.catalog import Catalog, Deployment, ModelSpec, ProviderSpec
from parrotrouter.discovery import wire
from parrotrouter.discovery.fetch import DiscoveryFailed, Source, list_models
from parrotrouter.discovery.models import plan_for
from parrotrouter.discovery.refresh import CatalogRefresh
from parrotrouter.settings import Secret
from tests.fakes import model_servers
from tests.fakes.model_servers import ModelServer, fixture


@pytest.fixture
def servers() -> Iterator[list[ModelServer]]:
    started: list[ModelServer] = []
    yield started
    for server in started:
        server.stop()


def serve(servers: list[ModelServer], server: ModelServer) -> ModelServer:
    servers.append(server.start())
    return server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def listed(session: aiohttp.ClientSession, server: ModelServer, dialect: str, timeout: float = 5,
                 keep: str | None = None) -> dict[str, wire.Listed]:
    listing = await list_models(session, Source("p", dialect, server.base_url, {}, keep), timeout)
    return {m.id: m for m in listing.models}


async def test_vllm(servers: list[ModelServer], session: aiohttp.ClientSession) -> None:
    models = await listed(session, serve(servers, model_servers.vllm()), "openai")
    assert models["meta-llama/Llama-3.1-8B-Instruct"].context_length == 131072


async def test_ollama_native(servers: list[ModelServer], session: aiohttp.ClientSession) -> None:
    server = serve(servers, model_servers.ollama())
    models = await listed(session, server, "ollama")
    assert models["llama3.2:latest"].context_length == 131072 and models["nomic-embed-text:latest"].embedding
    assert server.asked[0] == "/api/tags" and server.asked.count("/api/show") == 3


async def test_ollama_without_native_api_falls_back_to_v1(servers: list[ModelServer],
                                                          session: aiohttp.ClientSession) -> None:
    server = serve(servers, ModelServer({"/v1/models": {"object": "list", "data": [{"id": "qwen3:8b"}]}}))
    assert list(await listed(session, server, "ollama")) == ["qwen3:8b"]


async def test_lmstudio_and_its_fallback(servers: list[ModelServer], session: aiohttp.ClientSession) -> None:
    models = await listed(session, serve(servers, model_servers.lmstudio()), "lmstudio")
    assert models["text-embedding-nomic-embed-text-v1.5"].embedding and models["qwen2-vl-7b-instruct"].vision
    old = serve(servers, ModelServer({"/v1/models": {"data": [{"id": "meta-llama-3.1-8b-instruct"}]}}))
    assert list(await listed(session, old, "lmstudio")) == ["meta-llama-3.1-8b-instruct"]


async def test_llamacpp_served_context_from_props(servers: list[ModelServer], session: aiohttp.ClientSession) -> None:
    models = await listed(session, serve(servers, model_servers.llamacpp()), "llamacpp")
    assert models["../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"].context_length == 8192


async def test_keep_filter(servers: list[ModelServer], session: aiohttp.ClientSession) -> None:
    server = serve(servers, ModelServer({"/v1/models": fixture("openai_v1_models.json")}))
    assert sorted(await listed(session, server, "openai", keep="^ft:")) == [
        "ft:davinci-002:acme::8xyzABC2", "ft:gpt-4o-mini-2024-07-18:acme::9abcDEF1"]


@pytest.mark.parametrize(("body", "reason"), [
    (b"[" + b'{"id": "x"},' * (wire.MAX_BODY_BYTES // 12) + b'{"id": "y"}]', "answer larger than"),
    (b"<html>nope</html>", "answer is not JSON"),
    (b'{"data": 5}', "answer is not a model list"),
])
async def test_hostile_bodies_fail_cleanly(servers: list[ModelServer], session: aiohttp.ClientSession, body: bytes,
                                           reason: str) -> None:
    server = serve(servers, ModelServer({"/v1/models": body}))
    with pytest.raises(DiscoveryFailed, match=reason):
        await listed(session, server, "openai")


async def test_ten_thousand_models_and_bad_ids(servers: list[ModelServer], session: aiohttp.ClientSession) -> None:
    data: list[Any] = [{"id": f"model-{i}", "max_model_len": 4096} for i in range(10_000)]
    data[:0] = [{"id": "a\x00b"}, {"id": "x" * 300}, {"id": 12}, {"id": "\u202eevil"}, "junk", None]
    server = serve(servers, ModelServer({"/v1/models": orjson.dumps({"data": data})}))
    listing = await list_models(session, Source("p", "openai", server.base_url, {}), 5)
    assert len(listing.models) == wire.MAX_MODELS and listing.truncated
    assert listing.models[0].id == "model-0"


async def test_slow_server_times_out(servers: list[ModelServer], session: aiohttp.ClientSession) -> None:
    server = serve(servers, model_servers.vllm())
    server.delay = 2
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await listed(session, server, "openai", timeout=0.3)
    assert time.monotonic() - started < 1.5


async def test_redirects_are_not_followed(servers: list[ModelServer], session: aiohttp.ClientSession) -> None:
    server = serve(servers, model_servers.vllm())
    server.status = 302
    with pytest.raises(DiscoveryFailed, match="HTTP 302"):
        await listed(session, server, "openai")


# ---------------------------------------------------------------- the refresh loop

def base_model() -> ModelSpec:
    return ModelSpec(id="configured", deployments=(Deployment("cfg", "configured"),))


def refresh_for(server: ModelServer, name: str = "vllm", timeout: float = 2) -> CatalogRefresh:
    spec = ProviderSpec(name=name, type="openai", display_name=name, base_url=server.base_url,
                        api_key=Secret("sk-upstream-secret"))
    catalog = Catalog([spec], [base_model()])
    plan = plan_for(spec, "auto")
    assert plan is not None
    return CatalogRefresh(catalog, [plan], interval=0, timeout=timeout)


async def test_refresh_adds_and_removes_and_keeps_the_last_good_list(servers: list[ModelServer],
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    server = serve(servers, model_servers.vllm())
    refresh = refresh_for(server)
    catalog = refresh.catalog
    told: list[list[str]] = []
    refresh.listeners.append(lambda c: told.append(list(c.models)))
    await refresh.start()
    try:
        assert list(catalog.models) == ["configured", "meta-llama/Llama-3.1-8B-Instruct", "sql-lora",
                                        "BAAI/bge-m3-embed"]
        assert catalog.models["BAAI/bge-m3-embed"].capabilities.embeddings
        assert server.auth[-1] == "Bearer sk-upstream-secret"
        assert told == [list(catalog.models)]  # e.g. provider health, judging providers by their deployments
        server.listings["/v1/models"]["data"].append({"id": "new-model", "max_model_len": 2048})
        await refresh.refresh()
        assert catalog.models["new-model"].context_length == 2048 and catalog.knows("vllm/new-model")
        del server.listings["/v1/models"]["data"][0]
        await refresh.refresh()
        assert "meta-llama/Llama-3.1-8B-Instruct" not in catalog.models and "new-model" in catalog.models
        server.status = 503
        with caplog.at_level(logging.WARNING, "parrotrouter.discovery"):
            await refresh.refresh()
        assert "new-model" in catalog.models  # the last good list
        assert "HTTP 503" in caplog.text and "keeping the 3 listed before" in caplog.text
        assert "127.0.0.1" not in caplog.text and "sk-upstream-secret" not in caplog.text
    finally:
        await refresh.aclose()


async def test_start_up_waits_briefly_then_late_lists_fill_in(servers: list[ModelServer]) -> None:
    server = serve(servers, model_servers.vllm())
    server.delay = 0.6
    refresh = refresh_for(server, timeout=3)
    refresh.startup_wait = 0.2
    started = time.monotonic()
    await refresh.start()
    try:
        assert time.monotonic() - started < 0.5
        assert list(refresh.catalog.models) == ["configured"]  # served at once: the server is slow
        deadline = time.monotonic() + 3
        while "meta-llama/Llama-3.1-8B-Instruct" not in refresh.catalog.models and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert "meta-llama/Llama-3.1-8B-Instruct" in refresh.catalog.models  # filled in when it answered
    finally:
        await refresh.aclose()


def test_failing_providers_are_retried_sooner() -> None:
    refresh = CatalogRefresh(Catalog([], []), [], interval=300, timeout=1)
    assert refresh._pause() == 300
    refresh.failing["p"] = "connection refused"
    assert [refresh._pause() for _ in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    del refresh.failing["p"]
    assert refresh._pause() == 300 and refresh.retry == 10


async def test_unreachable_server(caplog: pytest.LogCaptureFixture) -> None:
    spec = ProviderSpec(name="ollama", type="openai", display_name="Ollama", base_url="http://127.0.0.1:9/v1")
    catalog = Catalog([spec], [base_model()])
    plan = plan_for(spec, "auto")
    assert plan is not None
    refresh = CatalogRefresh(catalog, [plan], interval=0, timeout=1)
    with caplog.at_level(logging.WARNING, "parrotrouter.discovery"):
        await refresh.start()
        await asyncio.sleep(0)
    await refresh.aclose()
    assert list(catalog.models) == ["configured"]
    assert "provider ollama: listing its models failed: connection refused (none served yet)" in caplog.text


async def test_ollama_details_are_asked_again_only_when_a_digest_changes(servers: list[ModelServer]) -> None:
    server = serve(servers, model_servers.ollama())
    refresh = refresh_for(server, name="ollama")
    await refresh.start()
    try:
        await refresh.refresh()
        assert server.asked.count("/api/show") == 3
        assert refresh.catalog.models["llama3.2:latest"].context_length == 131072  # from the remembered details
        server.listings["/api/tags"]["models"][0]["digest"] = "b" * 64  # llama3.2 pulled again
        await refresh.refresh()
        assert server.asked.count("/api/show") == 4
    finally:
        await refresh.aclose()
