"""The HTTP edge: each client connection from accept to close, bounded in time, in number and in work.

aiohttp's `RequestHandler` (one per connection) parses requests and runs the app. This subclass adds
what a public gateway needs and aiohttp leaves open (read against aiohttp 3.14):

- `header_timeout`: a request's headers must arrive within it, counted from accept for a new
  connection and from the first byte of the next request on a kept-alive one (an idle kept-alive
  connection stays aiohttp's `keepalive_timeout` business). A client that trickles them is closed.
- `body_timeout`: once the headers are in, the whole body must arrive within it; reading the body
  then raises `BodyTimeout`, which `read_json` answers with a 408 envelope.
- `max_connections` per process: beyond it a new connection is answered 503 and closed at once.
- A body the app leaves unread (401, 404, 405, 413, ...) is never parsed: aiohttp's lingering close
  reads it through the parser, which inflates it (an 8 MB gzip body is 8 GiB of work, for anyone,
  key or not). Instead the answer says `Connection: close`, the write side is shut down, and raw
  bytes are dropped for at most `LINGER_SECONDS` and `max_body_bytes` (nginx's lingering close),
  so a client still sending its body can read the answer; then the connection is closed.
- A request the parser rejects (bad request line, oversized or malformed header, duplicate
  Content-Length) is answered in the JSON error envelope instead of aiohttp's text/plain.

Three aiohttp internals are relied on, and pinned by tests/e2e/test_edge.py: the handler's queue
of parsed requests (`RequestHandler._messages`), its loop (`BaseProtocol._loop`) and the runner's
`_make_server` hook (no public way to choose the protocol class).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from ..errors import InternalServerError, InvalidRequest, ParrotError, ServiceUnavailable, echo
from ..settings import Settings
from .errors import error_response

log = logging.getLogger("parrotrouter.edge")

# How long an answered connection may keep sending a body nobody reads before it is closed.
LINGER_SECONDS = 5.0
# transport.pause_reading()/resume_reading() raise these when a transport has no flow control.
_FLOW_CONTROL_ERRORS = (AttributeError, NotImplementedError, RuntimeError)


class BodyTimeout(Exception):
    """The request body did not arrive within `body_timeout` seconds."""


@dataclasses.dataclass(frozen=True)
class EdgeLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    linger_bytes: int  # raw bytes dropped at most while lingering: what a body may be anyway

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(header_timeout=settings.header_timeout, body_timeout=settings.body_timeout,
                   max_connections=settings.max_connections, linger_bytes=settings.max_body_bytes)

    @property
    def check_interval(self) -> float:
        # Deadlines are checked by one timer per connection that re-arms itself at most this far
        # ahead, so a deadline that starts later is never checked late (no timer per request).
        return min(self.header_timeout, self.body_timeout)


def _refusal() -> bytes:
    err = ServiceUnavailable("Too many connections to this server; retry shortly.", retry_after=1)
    body = orjson.dumps(err.envelope())
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


class EdgeServer(Server):
    """aiohttp's `Server` (the protocol factory) making `EdgeProtocol`s and counting them."""

    def __init__(self, handler: Any, *, limits: EdgeLimits, loop: asyncio.AbstractEventLoop,
                 request_factory: Any, handler_cancellation: bool, **protocol_kwargs: Any) -> None:
        super().__init__(handler, request_factory=request_factory, handler_cancellation=handler_cancellation,
                         loop=loop, **protocol_kwargs)
        self.limits = limits
        self.refusal = _refusal()
        self.open_connections = 0
        self._protocol_loop = loop
        self._protocol_kwargs = protocol_kwargs
        self._refused = 0
        self._next_refusal_log = 0.0

    def __call__(self) -> EdgeProtocol:
        return EdgeProtocol(self, loop=self._protocol_loop, **self._protocol_kwargs)

    def admit(self) -> bool:
        """May one more connection open? Refusals are logged at most once a second."""
        if self.open_connections < self.limits.max_connections:
            return True
        self._refused += 1
        now = time.monotonic()
        if now >= self._next_refusal_log:
            log.warning("refused %d connection(s): %d open, max_connections is %d",
                        self._refused, self.open_connections, self.limits.max_connections)
            self._refused = 0
            self._next_refusal_log = now + 1.0
        return False

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open_connections += 1

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.open_connections -= 1


class EdgeProtocol(RequestHandler):
    """One client connection: aiohttp's request handling plus the edge's deadlines and limits."""

    __slots__ = ("_body", "_body_since", "_body_timed_out", "_deadline", "_discard_left", "_edge",
                 "_headers_since", "_lingering", "_refused")

    def __init__(self, manager: EdgeServer, *, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        # lingering_time=0: aiohttp's own lingering would read the unread body through the parser.
        super().__init__(manager, loop=loop, lingering_time=0, **kwargs)
        self._edge = manager
        self._deadline: asyncio.TimerHandle | None = None
        self._headers_since: float | None = None  # set while a request's headers are awaited
        self._body: StreamReader | None = None  # the body being received, if any
        self._body_since = 0.0
        self._body_timed_out = False
        self._discard_left = 0
        self._lingering: asyncio.Future[None] | None = None  # set once lingering: input is dropped
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._edge.admit():
            self._refused = True
            tcp = cast(asyncio.Transport, transport)  # uvloop's is not a registered asyncio.Transport
            tcp.write(self._edge.refusal)
            tcp.close()
            return
        super().connection_made(transport)
        now = self._loop.time()
        self._headers_since = now
        self._deadline = self._loop.call_at(now + self._edge.limits.check_interval, self._check_deadlines)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._lingering is not None and not self._lingering.done():
            self._lingering.set_result(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        lingering = self._lingering
        if lingering is not None:  # answered: drop raw bytes, never parse (or inflate) them
            self._discard_left -= len(data)
            if self._discard_left < 0 and not lingering.done():
                lingering.set_result(None)
            return
        body = self._body
        if data and self._headers_since is None and (body is None or body.is_eof()):
            self._headers_since = self._loop.time()  # the first byte of the next request
        messages = self._messages
        queued = len(messages)
        super().data_received(data)
        if len(messages) > queued:  # a request's headers are complete
            self._headers_since = None
            body = messages[-1][1]
            if body.is_eof():
                self._body = None
            else:
                self._body, self._body_since = body, self._loop.time()

    def _check_deadlines(self) -> None:
        self._deadline = None
        if self.transport is None or self._lingering is not None:
            return
        limits = self._edge.limits
        now = self._loop.time()
        due = now + limits.check_interval
        body = self._body
        if self._headers_since is not None:
            if now >= self._headers_since + limits.header_timeout:
                log.debug("closing a connection from %s: no complete headers within %ss", self.peername,
                          limits.header_timeout)
                self.force_close()
                return
            due = min(due, self._headers_since + limits.header_timeout)
        elif body is not None and not body.is_eof() and not self._body_timed_out:
            if now >= self._body_since + limits.body_timeout:
                self._body_timed_out = True
                body.set_exception(BodyTimeout(f"The request body did not arrive within {limits.body_timeout:g}s."))
            else:
                due = min(due, self._body_since + limits.body_timeout)
        self._deadline = self._loop.call_at(due, self._check_deadlines)

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        unread = not request.content.is_eof()
        if unread and isinstance(resp, web.StreamResponse):
            resp.force_close()  # the rest of the body is not parsed: no next request on this connection
        result = await super().finish_response(request, resp, start_time)
        if unread and not result[1] and not self._body_timed_out:
            await self._linger()
        return result

    async def _linger(self) -> None:
        """Half-close and drop what the client still sends, so it can read the answer before the
        connection closes (closing with unread input resets it, and the answer may be lost)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._discard_left = self._edge.limits.linger_bytes
        lingering = self._lingering = self._loop.create_future()
        with contextlib.suppress(*_FLOW_CONTROL_ERRORS):
            transport.resume_reading()  # the parser may have paused it when its buffer filled
        if transport.can_write_eof():
            transport.write_eof()
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                await lingering
        except TimeoutError:
            pass

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's answer to a request the parser rejected (or a failure outside the app), in
        the envelope. Malformed requests are routine on a public port: logged at debug level."""
        err: ParrotError
        if isinstance(exc, HttpProcessingError):
            log.debug("malformed request from %s: %s", request.remote, exc.message)
            if isinstance(exc, LineTooLong):
                reason = f"a request line or header field is longer than {exc.args[1]} bytes"
            else:  # the parser's first line says what is wrong; the next ones draw where, with the bytes
                reason = echo(str(exc.message).split("\n", 1)[0].rstrip(": "), 120)
            err = InvalidRequest(f"Malformed HTTP request: {reason}.")
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            err = InternalServerError("Internal server error.")
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        resp = error_response(err)
        resp.force_close()
        return resp


class EdgeRunner(web.AppRunner):
    """`AppRunner` serving the app through `EdgeServer`."""

    def __init__(self, app: web.Application, limits: EdgeLimits, *, shutdown_timeout: float,
                 **server_kwargs: Any) -> None:
        super().__init__(app, shutdown_timeout=shutdown_timeout, **server_kwargs)
        self._limits = limits
        self._server_kwargs = server_kwargs

    async def _make_server(self) -> Server:
        # The base runs the app's startup and freezes it, then builds aiohttp's own Server; only
        # its request handler and factory (the app's routing) are taken from that.
        base = await super()._make_server()
        kwargs = dict(self._server_kwargs)
        return EdgeServer(base.request_handler, limits=self._limits, loop=asyncio.get_running_loop(),
                          request_factory=base.request_factory,
                          handler_cancellation=kwargs.pop("handler_cancellation", False), **kwargs)


class ListenError(Exception):
    """The listening socket could not be opened (e.g. the port is taken)."""


async def serve(app: web.Application, settings: Settings, *, reuse_port: bool,
                access_log: logging.Logger | None) -> None:
    """Serve `app` on settings.host:port until SIGTERM or SIGINT, then drain for `shutdown_timeout`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = EdgeRunner(app, EdgeLimits.from_settings(settings), shutdown_timeout=settings.shutdown_timeout,
                        handler_cancellation=True, access_log=access_log,
                        keepalive_timeout=75.0)  # web.run_app's default, kept
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
        try:
            await site.start()
        except OSError as exc:
            raise ListenError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
        await stop.wait()
    finally:
        await runner.cleanup()
