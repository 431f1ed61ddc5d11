"""`LeanUpstreamClient`: the `Transport` over the lean HTTP/1.1 client of `upstream/h1.py`, with
the same timeouts, stale-connection retry and failure kinds as the aiohttp `UpstreamClient`.

`make_upstream_client` picks one of the two once per provider client.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Literal

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..catalog import Timeouts
from ..errors import FailureKind, UpstreamFailure
from . import h1
from .client import (
    ServerSentEvent,
    StreamParser,
    Transport,
    UpstreamClient,
    UpstreamRequest,
    UpstreamResponse,
    _timeout_failure,
)
from .trace_context import OUTGOING

UpstreamClientKind = Literal["fast", "aiohttp"]
_MAX_CACHED_URLS = 256
_DECODE_STEP = 1 << 20  # decoded bytes produced per step of a compressed stream (a bomb stays bounded)


def make_upstream_client(base_url: str, timeouts: Timeouts, max_connections: int = 0,
                         keepalive_timeout: float = 30.0, unix_socket: str | None = None,
                         kind: UpstreamClientKind = "fast") -> Transport:
    """The provider's upstream client: the lean one unless `kind` asks for aiohttp or the base URL
    is one it does not speak (neither http nor https)."""
    if kind == "fast" and URL(base_url).scheme in ("http", "https"):
        return LeanUpstreamClient(base_url, timeouts, max_connections, keepalive_timeout, unix_socket)
    return UpstreamClient(base_url, timeouts, max_connections, keepalive_timeout, unix_socket)


class _Target:
    """Where a URL goes: its pool key, Host header and request target (parsed once per URL)."""

    __slots__ = ("host", "origin", "target")

    def __init__(self, url: str, encoded: bool) -> None:
        parsed = URL(url, encoded=encoded)
        if parsed.scheme not in ("http", "https") or not parsed.raw_host or parsed.port is None:
            raise UpstreamFailure(f"Unsupported upstream URL scheme ({parsed.scheme}).",
                                  kind=FailureKind.BAD_REQUEST)
        host = parsed.raw_host
        self.origin = (parsed.scheme, host, parsed.port)
        host = f"[{host}]" if ":" in host else host
        self.host = host if parsed.is_default_port() else f"{host}:{parsed.port}"
        self.target = parsed.raw_path_qs or "/"


class LeanUpstreamClient:
    """Pooled keep-alive client for one provider. `open()` yields a response whose body is not yet read."""

    def __init__(self, base_url: str, timeouts: Timeouts, max_connections: int = 0,
                 keepalive_timeout: float = 30.0, unix_socket: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self._pool = h1.H1Pool(max_connections, keepalive_timeout, unix_socket)
        self._targets: dict[tuple[str, bool], _Target] = {}

    def url(self, path: str) -> str:
        return self.base_url + path

    def open(self, request: UpstreamRequest) -> AbstractAsyncContextManager[UpstreamResponse]:
        """Send the request; `async with` gives the response with headers read. Retries once on a
        connection the server closed before answering."""
        return _LeanExchange(self, request)

    def _target(self, request: UpstreamRequest) -> _Target:
        key = (request.url, request.encoded_url)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= _MAX_CACHED_URLS:
                self._targets.clear()
            target = self._targets[key] = _Target(request.url, request.encoded_url)
        return target

    async def read_body(self, response: UpstreamResponse, limit: int = 64 * 2**20) -> bytes:
        exchange = response.raw
        assert isinstance(exchange, _LeanExchange)
        conn, decoder = exchange.conn, exchange.decoder
        assert conn is not None
        parts: list[bytes] = []
        size = 0
        try:
            while chunk := await conn.read(exchange.deadline):
                if decoder is not None:
                    chunk = decoder.decode(chunk, limit + 1 - size)
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise UpstreamFailure("The upstream response is too large.",
                                          kind=FailureKind.STREAM_PROTOCOL)
        except h1.H1Error as exc:
            raise _translate(exc, self.timeouts, "read", exchange.deadline_label) from None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def stream_events(self, response: UpstreamResponse,
                      parser: StreamParser) -> AsyncIterator[list[ServerSentEvent]]:
        exchange = response.raw
        assert isinstance(exchange, _LeanExchange)
        return _read_events(exchange, self.timeouts, parser)

    async def aclose(self) -> None:
        await self._pool.aclose()


class _Decoder:
    """Incremental gzip/deflate decoding (we ask for identity; some servers compress anyway)."""

    __slots__ = ("_zlib", "encoding")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._zlib: zlib._Decompress | None = None

    def decode(self, chunk: bytes, max_length: int) -> bytes:
        """`chunk` decoded, at most `max_length` bytes (reaching it means the caller's limit is passed)."""
        decompressor = self._zlib or self._start(chunk)
        try:
            return decompressor.decompress(chunk, max(max_length, 1))
        except zlib.error:
            raise _undecodable() from None

    def pieces(self, chunk: bytes) -> list[bytes]:
        """`chunk` decoded, in pieces of at most `_DECODE_STEP` bytes."""
        decompressor = self._zlib or self._start(chunk)
        try:
            out = [decompressor.decompress(chunk, _DECODE_STEP)]
            while decompressor.unconsumed_tail:
                out.append(decompressor.decompress(decompressor.unconsumed_tail, _DECODE_STEP))
        except zlib.error:
            raise _undecodable() from None
        return out

    def _start(self, chunk: bytes) -> zlib._Decompress:
        if self.encoding == "gzip":
            wbits = 16 + zlib.MAX_WBITS
        else:  # deflate: zlib-wrapped as the RFC says, or raw as some servers send it
            wrapped = len(chunk) >= 2 and (chunk[0] & 0x0F) == 8 and ((chunk[0] << 8) | chunk[1]) % 31 == 0
            wbits = zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits)
        return self._zlib


def _undecodable() -> UpstreamFailure:
    return UpstreamFailure("The upstream response body could not be decompressed.",
                           kind=FailureKind.STREAM_PROTOCOL)


class _LeanExchange:
    """`LeanUpstreamClient.open`: one request and its response, as an async context manager."""

    __slots__ = ("client", "conn", "deadline", "deadline_label", "decoder", "request", "started")

    def __init__(self, client: LeanUpstreamClient, request: UpstreamRequest) -> None:
        self.client = client
        self.request = request
        self.conn: h1.H1Connection | None = None
        self.deadline = 0.0
        self.deadline_label = "total"
        self.decoder: _Decoder | None = None
        self.started = 0.0

    async def __aenter__(self) -> UpstreamResponse:
        client, request = self.client, self.request
        timeouts = client.timeouts
        target = client._target(request)
        headers = request.headers
        if (trace := OUTGOING.get()) is not None:
            headers = {**headers, **trace.headers()}
        try:
            payload = h1.serialize_request(request.method, target.target, target.host, headers, request.body)
        except h1.UnsafeHeader as exc:
            raise UpstreamFailure(f"Refused to send an unsafe upstream request ({exc}).",
                                  kind=FailureKind.BAD_REQUEST) from None
        pool = client._pool
        now = self.started = asyncio.get_running_loop().time()
        self.deadline = now + timeouts.total
        head_deadline, head_label = self.deadline, "total"
        if request.stream:
            head_deadline, head_label = _earliest(now, timeouts, first=True, total=self.deadline)
        phase = "first" if request.stream else "open"
        for attempt in (1, 2):
            try:
                conn = await pool.acquire(target.origin, min(now + timeouts.connect, self.deadline),
                                          fresh=attempt == 2)
            except h1.Expired:
                raise _timeout_failure("connect", timeouts.connect) from None
            except h1.ConnectFailed as exc:
                raise UpstreamFailure(f"Cannot connect to the upstream provider ({exc.reason}).",
                                      kind=FailureKind.CONNECTION) from None
            self.conn = conn
            try:
                conn.send(payload)
                await conn.read_head(head_deadline)
                break
            except BaseException as exc:
                self.conn = None
                pool.release(conn)  # not complete: closed, never pooled
                if isinstance(exc, h1.ConnectionLost) and not exc.answered:
                    if attempt == 2:
                        raise UpstreamFailure("The upstream provider closed the connection without answering.",
                                              kind=FailureKind.CONNECTION) from None
                    continue
                if isinstance(exc, h1.H1Error):
                    raise _translate(exc, timeouts, phase, head_label) from None
                raise
        headers_view = CIMultiDictProxy(CIMultiDict(conn.headers))
        encoding = headers_view.get("Content-Encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self.decoder = _Decoder("deflate" if encoding == "deflate" else "gzip")
        return UpstreamResponse(conn.status, headers_view, self)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            self.client._pool.release(conn)  # pooled only if its response was read to the end


def _earliest(now: float, timeouts: Timeouts, *, first: bool, total: float) -> tuple[float, str]:
    """The next read's deadline on a stream and which timeout it is."""
    when, label = now + timeouts.idle, "no data"
    if first and now + timeouts.first_token <= when:
        when, label = now + timeouts.first_token, "first token"
    if total < when:
        when, label = total, "total"
    return when, label


async def _read_events(exchange: _LeanExchange, timeouts: Timeouts,
                       parser: StreamParser) -> AsyncIterator[list[ServerSentEvent]]:
    """The events of a streaming response, those of each network read together. The first event
    must arrive within `first_token` seconds, later gaps within `idle`, all within `total`."""
    conn, decoder = exchange.conn, exchange.decoder
    assert conn is not None
    loop = conn.loop
    first = True
    while True:
        deadline, label = _earliest(loop.time(), timeouts, first=first, total=exchange.deadline)
        try:
            chunk = await conn.read(deadline)
        except h1.H1Error as exc:
            raise _translate(exc, timeouts, "first" if first else "read", label) from None
        if not chunk:
            break
        if decoder is None:
            events = parser.feed(chunk)
        else:
            events = [event for piece in decoder.pieces(chunk) for event in parser.feed(piece)]
        if events:
            first = False
            yield events
    if rest := parser.close():
        yield rest


def _translate(exc: h1.H1Error, timeouts: Timeouts, phase: str, label: str) -> UpstreamFailure:
    """The one translation point from the lean client's errors to `UpstreamFailure`."""
    if isinstance(exc, h1.Expired):
        seconds = {"no data": timeouts.idle, "first token": timeouts.first_token,
                   "connect": timeouts.connect}.get(label, timeouts.total)
        return _timeout_failure(label, seconds)
    if isinstance(exc, h1.MalformedResponse):
        return UpstreamFailure(f"The upstream provider sent an invalid HTTP response ({exc}).",
                               kind=FailureKind.STREAM_PROTOCOL)
    if isinstance(exc, h1.ConnectionLost):
        if phase == "read" or exc.answered:
            return UpstreamFailure("The upstream provider closed the connection mid-response.",
                                   kind=FailureKind.STREAM_PROTOCOL)
        return UpstreamFailure("The upstream provider closed the connection without answering.",
                               kind=FailureKind.CONNECTION)
    return UpstreamFailure(f"Upstream connection error ({type(exc).__name__}).", kind=FailureKind.CONNECTION)
