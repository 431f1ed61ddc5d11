"""A fake OpenAI upstream a test can slow down, break, stop and bring back on the same port."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .openai_upstream import FakeOpenAI


class SwitchableOpenAI(FakeOpenAI):
    """`delay` slows every chat answer; `failing` answers HTTP 500; `stop()` then `start()` keeps
    the port (a dead vLLM that comes back). `probes` counts GET /v1/models, `probe_headers` keeps
    the headers of each."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.failing = False
        self.probes = 0
        self.probe_headers: list[dict[str, str]] = []

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/v1/models", self.models)

    async def _start(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            super().stop()

    async def models(self, request: web.Request) -> web.Response:
        self.probes += 1
        self.probe_headers.append(dict(request.headers))
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing:
            await request.read()
            return web.json_response({"error": {"message": "The server had an error", "type": "server_error"}},
                                     status=500)
        return await super().chat(request)
