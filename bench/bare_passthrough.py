#!/usr/bin/env python3
"""The ceiling bench/run.py measures the gateway against: an aiohttp passthrough doing only what any
Python router must do, and nothing else (no keys, limits, credits, routing, ledger or metrics).

Per request: read and parse the JSON body (a router must, to see `model` and `stream`), encode it
again, send it over a pooled keep-alive aiohttp ClientSession to the upstream, and answer with the
upstream's JSON, or relay its SSE stream chunk by chunk as it arrives (`iter_any`). On uvloop, as
`parrotrouter serve` is (server.py installs uvloop's policy when it is installed), so the two are
compared on the same event loop.

    python bench/bare_passthrough.py --upstream http://127.0.0.1:18000/v1 --port 8090 [--workers 2]

With --workers N, N processes share the port through SO_REUSEPORT, like `parrotrouter serve --workers N`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

_UPSTREAM_HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class Passthrough:
    """The one route, with the upstream's base URL and the pooled client session."""

    def __init__(self, upstream: str) -> None:
        self.url = upstream.rstrip("/") + "/chat/completions"
        self.session: ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        self.session = ClientSession(connector=TCPConnector(limit=0, keepalive_timeout=60),
                                     timeout=ClientTimeout(total=600, sock_connect=5))

    async def stop(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": {"message": "the body is not JSON"}}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "the body is not a JSON object"}}, status=400)
        assert self.session is not None
        async with self.session.post(self.url, data=json.dumps(body).encode(), headers=_UPSTREAM_HEADERS) as up:
            if not body.get("stream"):
                return web.Response(body=await up.read(), status=up.status,
                                    content_type=up.content_type or "application/json")
            relay = web.StreamResponse(status=up.status, headers=_SSE_HEADERS)
            try:
                await relay.prepare(request)
                async for chunk in up.content.iter_any():
                    await relay.write(chunk)
                await relay.write_eof()
            except ConnectionResetError:  # the client left mid-stream (wrk stopping)
                pass
            return relay


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def serve(upstream: str, port: int, reuse_port: bool) -> None:
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    route = Passthrough(upstream)
    app = web.Application(client_max_size=8 * 2**20)
    app.router.add_post("/v1/chat/completions", route.chat_completions)
    app.router.add_get("/ready", ready)
    app.on_startup.append(route.start)
    app.on_cleanup.append(route.stop)
    web.run_app(app, host="127.0.0.1", port=port, reuse_port=reuse_port or None, access_log=None, print=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="http://127.0.0.1:18000/v1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--workers", type=int, default=1, help="0: one worker sharing the port with others")
    args = parser.parse_args()
    if args.workers <= 1:
        serve(args.upstream, args.port, reuse_port=args.workers == 0)
        return
    # N processes of this script, one worker each, sharing the port; stopped with this one.
    children = [subprocess.Popen([sys.executable, __file__, "--upstream", args.upstream, "--port", str(args.port),
                                  "--workers", "0"]) for _ in range(args.workers)]

    def stop(signum: int, frame: object) -> None:
        for child in children:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.wait()


if __name__ == "__main__":
    main()
