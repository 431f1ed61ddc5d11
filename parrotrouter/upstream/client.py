"""One pooled keep-alive aiohttp session per upstream, with the gateway's timeouts. Providers use
the lean HTTP/1.1 client of `lean_client.py` by default (`make_upstream_client`); this one stays
for what that one does not speak. The types, SSE parsing and `_timeout_failure` here are shared.

aiohttp's transport failures (connect, reset, timeouts) become `UpstreamFailure` here and nowhere
else (cf. httpx's `map_httpcore_exceptions`; the lean client has its own one such point). HTTP
error *bodies* are the provider adapter's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import NamedTuple, Protocol

import aiohttp
from yarl import URL

from ..catalog import Timeouts
from ..errors import FailureKind, UpstreamFailure
from .trace_context import OUTGOING


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    body: bytes
    headers: Mapping[str, str]
    stream: bool
    # `url` is already percent-encoded and is sent byte for byte (a signed request's path must
    # reach the server exactly as it was signed); otherwise the HTTP client normalises it.
    encoded_url: bool = False
    method: str = "POST"  # model management (DELETE /models/{id}) uses others


@dataclasses.dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    raw: object  # the transport's own response (aiohttp's ClientResponse for UpstreamClient)


class Transport(Protocol):
    """How a provider reaches its upstream. `UpstreamClient` is the real one; tests inject a
    transport that answers canned bodies, so adapters are tested without sockets."""

    def open(self, request: UpstreamRequest) -> AbstractAsyncContextManager[UpstreamResponse]: ...

    async def read_body(self, response: UpstreamResponse, limit: int = ...) -> bytes: ...

    def stream_events(self, response: UpstreamResponse,
                      parser: StreamParser) -> AsyncIterator[list[ServerSentEvent]]: ...

    async def aclose(self) -> None: ...


class StreamParser(Protocol):
    """Incremental framing of a streamed body: what each read brought in, the events it completed
    out. `SSEParser` for `text/event-stream`; a provider with another framing brings its own."""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]: ...

    def close(self) -> list[ServerSentEvent]: ...


def _timeout_failure(what: str, seconds: float) -> UpstreamFailure:
    return UpstreamFailure(f"The upstream provider timed out ({what} after {seconds:g} s).",
                           kind=FailureKind.TIMEOUT)


class UpstreamClient:
    """Pooled client for one provider. `open()` yields a response whose body is not yet read."""

    def __init__(self, base_url: str, timeouts: Timeouts, max_connections: int = 0,
                 keepalive_timeout: float = 30.0, unix_socket: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        connector: aiohttp.BaseConnector
        if unix_socket:
            connector = aiohttp.UnixConnector(path=unix_socket, limit=max_connections,
                                              keepalive_timeout=keepalive_timeout)
        else:
            connector = aiohttp.TCPConnector(
                limit=max_connections, keepalive_timeout=keepalive_timeout, ttl_dns_cache=300,
                family=socket.AF_UNSPEC,
            )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        # Streams: per-read idle limit; plain requests: total only (headers come after generation).
        self._stream_timeout = aiohttp.ClientTimeout(
            total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.idle)
        self._plain_timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
        self._encoded_urls: dict[str, URL] = {}  # signed requests' URLs, parsed once each

    def url(self, path: str) -> str:
        return self.base_url + path

    def open(self, request: UpstreamRequest) -> AbstractAsyncContextManager[UpstreamResponse]:
        """Send the request (a POST unless it says otherwise); `async with` gives the response with
        headers read, released on exit. Retries once on a stale pooled connection (the server
        closed it before answering)."""
        return _Exchange(self, request)

    def _url(self, request: UpstreamRequest) -> str | URL:
        if not request.encoded_url:
            return request.url
        url = self._encoded_urls.get(request.url)
        if url is None:
            if len(self._encoded_urls) >= _MAX_CACHED_URLS:
                self._encoded_urls.clear()
            url = self._encoded_urls[request.url] = URL(request.url, encoded=True)
        return url

    async def read_body(self, response: UpstreamResponse, limit: int = 64 * 2**20) -> bytes:
        raw = response.raw
        assert isinstance(raw, aiohttp.ClientResponse)
        with _TransportErrors(self.timeouts, "read"):
            body = await raw.content.read(limit + 1)
        if len(body) > limit:
            raise UpstreamFailure("The upstream response is too large.", kind=FailureKind.STREAM_PROTOCOL)
        return body

    def stream_events(self, response: UpstreamResponse,
                      parser: StreamParser) -> AsyncIterator[list[ServerSentEvent]]:
        raw = response.raw
        assert isinstance(raw, aiohttp.ClientResponse)
        return read_events(raw, self.timeouts, parser)

    async def aclose(self) -> None:
        await self._session.close()


class _Exchange:
    """`UpstreamClient.open`: one request and its response, as an async context manager (a class,
    not a generator-based one: this runs once per upstream call)."""

    __slots__ = ("client", "request", "response")

    def __init__(self, client: UpstreamClient, request: UpstreamRequest) -> None:
        self.client = client
        self.request = request
        self.response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> UpstreamResponse:
        client, request = self.client, self.request
        timeout = client._stream_timeout if request.stream else client._plain_timeout
        headers = request.headers
        if (trace := OUTGOING.get()) is not None:  # the attempt's trace context (upstream/trace_context.py)
            headers = {**headers, **trace.headers()}
        url = client._url(request)
        session, timeouts = client._session, client.timeouts
        for attempt in (1, 2):
            try:
                with _TransportErrors(timeouts, "first" if request.stream else "open"):
                    ctx = session.request(request.method, url, data=request.body, headers=headers, timeout=timeout)
                    if request.stream:
                        async with asyncio.timeout(timeouts.first_token):
                            resp = await ctx
                    else:
                        resp = await ctx
                break
            except _StaleConnection:
                if attempt == 2:
                    raise UpstreamFailure(
                        "The upstream provider closed the connection without answering.",
                        kind=FailureKind.CONNECTION) from None
        self.response = resp
        return UpstreamResponse(resp.status, resp.headers, resp)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.response is not None:
            self.response.release()


class ServerSentEvent(NamedTuple):
    """One event of a stream (a named tuple: one is made for every event of every stream)."""

    event: str | None
    data: str


_MAX_CACHED_URLS = 256  # signed URLs kept parsed per client (then the cache starts over)
MAX_EVENT_BYTES = 16 * 2**20  # one server-sent event, at most (an upstream must not fill our memory)


def _too_large() -> UpstreamFailure:
    return UpstreamFailure("The upstream sent a stream event larger than the gateway accepts.",
                           kind=FailureKind.STREAM_PROTOCOL)


class SSEParser:
    """Incremental `text/event-stream` parsing (WHATWG rules for data/event/comment lines): feed
    it what each read brought, get the events that completed."""

    __slots__ = ("_buffer", "_carry_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._carry_cr = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._carry_cr:
            chunk = b"\r" + chunk
            self._carry_cr = False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):  # a CRLF may be split across reads
                chunk, self._carry_cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + chunk if self._buffer else chunk
        end = buffer.rfind(b"\n\n")
        if end < 0:
            if len(buffer) > MAX_EVENT_BYTES:
                raise _too_large()
            self._buffer = buffer
            return []
        # The blocks the read completed, split at once (a read often brings a whole answer:
        # taking one block at a time and copying the rest after each is quadratic in it).
        rest = buffer[end + 2:]
        if len(rest) > MAX_EVENT_BYTES:
            raise _too_large()
        blocks = _text(buffer[:end]).split("\n\n")
        self._buffer = rest
        events = []
        for block in blocks:
            if block.startswith("data: ") and "\n" not in block:  # the common case: one data line
                events.append(ServerSentEvent(None, block[6:]))
            elif (event := _parse_block(block)) is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """What is left when the stream ends (a last event without its blank line)."""
        buffer, self._buffer = self._buffer, b""
        event = _parse_block(_text(buffer)) if buffer.strip() else None
        return [event] if event is not None else []


async def read_events(resp: aiohttp.ClientResponse, timeouts: Timeouts,
                      parser: StreamParser) -> AsyncIterator[list[ServerSentEvent]]:
    """The events of a streaming response as `parser` frames them, those of each network read
    together so they can be relayed in one write. The first event must arrive within
    `first_token` seconds; later gaps are bounded by the session's per-read `idle` timeout."""
    stream = resp.content
    first = True
    while True:
        with _TransportErrors(timeouts, "first" if first else "read"):
            if first:
                async with asyncio.timeout(timeouts.first_token):
                    chunk = await stream.readany()
            else:
                chunk = await stream.readany()
        if not chunk:
            break
        events = parser.feed(chunk)
        if events:
            first = False
            yield events
    if rest := parser.close():
        yield rest


def _text(blocks: bytes) -> str:
    try:
        return blocks.decode("utf-8")
    except UnicodeDecodeError:
        raise UpstreamFailure("The upstream stream is not valid UTF-8.",
                              kind=FailureKind.STREAM_PROTOCOL) from None


def _parse_block(text: str) -> ServerSentEvent | None:
    if text.startswith("data: ") and "\n" not in text:  # the common case: one data line
        return ServerSentEvent(None, text[6:])
    event: str | None = None
    data: list[str] = []
    for line in text.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if not data and event is None:
        return None
    return ServerSentEvent(event, "\n".join(data))


class _StaleConnection(Exception):
    pass


class _TransportErrors:
    """The one translation point from aiohttp/asyncio transport errors to `UpstreamFailure`.

    `phase` is what was under way: "open" (request sent, waiting for the response headers),
    "first" (a stream waiting for its first event) or "read" (reading a body or stream). A class,
    not a generator-based context manager: it is entered on every upstream call and read."""

    __slots__ = ("phase", "timeouts")

    def __init__(self, timeouts: Timeouts, phase: str) -> None:
        self.timeouts = timeouts
        self.phase = phase

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            _raise_translated(exc, self.timeouts, self.phase)


def map_transport_errors(timeouts: Timeouts, phase: str) -> contextlib.AbstractContextManager[None]:
    """A context manager translating the transport errors raised in it (`_TransportErrors`)."""
    return _TransportErrors(timeouts, phase)


def _raise_translated(exc: BaseException, timeouts: Timeouts, phase: str) -> None:
    """Raise the translation of a transport error; anything else propagates as it is."""
    reading = phase == "read"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        if reading:
            raise UpstreamFailure("The upstream provider closed the connection mid-response.",
                                  kind=FailureKind.STREAM_PROTOCOL) from None
        raise _StaleConnection() from None
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        raise _timeout_failure("connect", timeouts.connect) from None
    if isinstance(exc, aiohttp.SocketTimeoutError):
        raise _timeout_failure("no data", timeouts.idle) from None
    if isinstance(exc, TimeoutError):
        if phase == "first":
            raise _timeout_failure("first token", timeouts.first_token) from None
        raise _timeout_failure("total", timeouts.total) from None
    if isinstance(exc, aiohttp.ClientPayloadError):
        raise UpstreamFailure(f"The upstream response was cut off ({type(exc).__name__}).",
                              kind=FailureKind.STREAM_PROTOCOL) from None
    if isinstance(exc, aiohttp.ClientConnectorError):
        raise UpstreamFailure(f"Cannot connect to the upstream provider ({exc.os_error.strerror or exc}).",
                              kind=FailureKind.CONNECTION) from None
    if isinstance(exc, aiohttp.ClientResponseError):
        raise UpstreamFailure(f"The upstream provider sent an invalid HTTP response ({exc.status}).",
                              kind=FailureKind.STREAM_PROTOCOL) from None
    if isinstance(exc, aiohttp.ClientError | OSError):
        kind = FailureKind.STREAM_PROTOCOL if reading else FailureKind.CONNECTION
        raise UpstreamFailure(f"Upstream connection error ({type(exc).__name__}).", kind=kind) from None
