"""Fake model servers (vLLM, Ollama, LM Studio, llama.cpp server, OpenRouter, OpenAI) answering their
documented `/models` shapes (golden bodies in tests/data/discovery/) over real loopback HTTP, and
chatting as the fake OpenAI upstream does. Tests change `listings` while it runs (refresh), or make it
slow, failing or hostile."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from .openai_upstream import FakeOpenAI

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "discovery"


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


class ModelServer(FakeOpenAI):
    """GET `path` answers `listings[path]` (JSON, or raw bytes); POST /api/show answers `shows[model]`."""

    def __init__(self, listings: dict[str, Any], shows: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.listings = listings
        self.shows = shows or {}
        self.delay = 0.0  # seconds before a listing answers
        self.status = 200  # a listing's status (not 200: an error body)
        self.asked: list[str] = []  # the paths of GET and /api/show requests, in order
        self.auth: list[str | None] = []  # their Authorization headers

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/api/show", self.show)
        app.router.add_get("/{tail:.*}", self.listing)

    async def listing(self, request: web.Request) -> web.StreamResponse:
        self.asked.append(request.path)
        self.auth.append(request.headers.get("Authorization"))
        if self.delay:
            await asyncio.sleep(self.delay)
        body = self.listings.get(request.path)
        if body is None:
            return web.json_response({"error": "not found"}, status=404)
        if self.status != 200:
            return web.json_response({"error": {"message": "unavailable"}}, status=self.status)
        if isinstance(body, bytes):
            return web.Response(body=body, content_type="application/json")
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    async def show(self, request: web.Request) -> web.Response:
        self.asked.append(request.path)
        name = (await request.json()).get("model")
        found = self.shows.get(name)
        if found is None:
            return web.json_response({"error": f"model '{name}' not found"}, status=404)
        return web.json_response(found)


def vllm() -> ModelServer:
    return ModelServer({"/v1/models": fixture("vllm_v1_models.json")})


def ollama() -> ModelServer:
    return ModelServer({"/api/tags": fixture("ollama_api_tags.json")}, fixture("ollama_api_show.json"))


def lmstudio() -> ModelServer:
    return ModelServer({"/api/v0/models": fixture("lmstudio_api_v0_models.json")})


def llamacpp() -> ModelServer:
    return ModelServer({"/v1/models": fixture("llamacpp_v1_models.json"), "/props": fixture("llamacpp_props.json")})


def openrouter() -> ModelServer:
    return ModelServer({"/v1/models": fixture("openrouter_models.json")})
