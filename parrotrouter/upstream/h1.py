"""A lean HTTP/1.1 keep-alive client transport: one asyncio.Protocol per connection, responses
parsed by httptools, a small pool per origin.

It knows nothing of the gateway: it raises its own few exceptions (`H1Error` and subclasses), which
`upstream/lean_client.py` translates to `UpstreamFailure` in one place. Under callgrind it costs
about a seventh of aiohttp's `ClientSession.request` + `read()` per upstream request.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
from collections.abc import Mapping

import httptools

HIGH_WATER = 256 * 1024  # body bytes buffered before the socket stops being read (a lagging consumer)
LOW_WATER = 64 * 1024
# A response head beyond these is refused (an upstream sending endless headers must not fill memory
# until a timeout): aiohttp's own bounds are of the same order (8 KiB a line, 32 KiB a field).
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
_OWN_HEADERS = frozenset(("host", "content-length", "transfer-encoding", "connection"))


class H1Error(Exception):
    """A transport failure of the lean client."""


class ConnectFailed(H1Error):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionLost(H1Error):
    """The server closed (or reset) the connection. `answered`: whether any response byte came."""

    def __init__(self, answered: bool) -> None:
        super().__init__("connection lost")
        self.answered = answered


class MalformedResponse(H1Error):
    pass


class Expired(H1Error):
    """A deadline given to `H1Connection.wait` passed."""


class UnsafeHeader(ValueError):
    """A header name or value that would change the request's framing (CR, LF, NUL, not a token)."""


def serialize_request(method: str, target: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request head and body; refuses header names/values that could smuggle a second request."""
    if not _TOKEN.fullmatch(method) or _UNSAFE_VALUE.search(target) or " " in target:
        raise UnsafeHeader("invalid request line")
    lines = [f"{method} {target} HTTP/1.1"]
    has_accept = False
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or _UNSAFE_VALUE.search(value):
            raise UnsafeHeader(f"invalid header {name!r}")
        lowered = name.lower()
        if lowered in _OWN_HEADERS:
            if lowered == "host":
                host = value
            continue
        has_accept = has_accept or lowered == "accept"
        lines.append(f"{name}: {value}")
    lines[0] = f"{lines[0]}\r\nHost: {host}\r\nContent-Length: {len(body)}"
    if not has_accept:
        lines.append("Accept: */*")  # as aiohttp sent it
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head + body if body else head


class H1Connection(asyncio.Protocol):
    """One keep-alive connection: at most one exchange at a time; the response as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.active = False
        self.origin: tuple[str, str, int] = ("", "", 0)
        self._waiter: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self.parser = httptools.HttpResponseParser(self)  # it parses message after message on one connection
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self._head_received = 0  # bytes read while the head was not complete
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.answered = False
        self.error: H1Error | None = None
        self._chunks.clear()
        self._buffered = 0
        self._paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        if not self.active or self.complete:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(MalformedResponse("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(MalformedResponse(str(exc) or type(exc).__name__))
        if not self.headers_done and self.error is None:  # the parser holds an unfinished head
            self._head_received += len(data)
            if self._head_received > MAX_HEAD_BYTES:
                self._fail(MalformedResponse("the response's headers are too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.active and not self.complete and self.error is None:
            if self.headers_done and self._until_eof():
                self.complete = True  # the body ran to the end of the connection, as announced
                self.keep_alive = False
            else:
                self.error = ConnectionLost(self.answered)
        self._wake()

    def _until_eof(self) -> bool:
        """Whether the body is delimited by the end of the connection (no length, no chunking)."""
        names = {name.lower() for name, _ in self.headers}
        return "content-length" not in names and "transfer-encoding" not in names and self.status not in (204, 304)

    # -- httptools callbacks ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.error is not None:
            return
        if len(self.headers) >= MAX_HEADERS:  # (the head's bytes are bounded in data_received)
            self._fail(MalformedResponse("the response's headers are too large"))
            return
        self.headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # an interim response (we never ask for one): skip it
            self.headers = []
            return
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of an interim response
            return
        self.complete = True
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        self._wake()

    # -- the exchange ----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.active = True
        assert self.transport is not None
        self.transport.write(data)

    async def wait(self, deadline: float | None) -> None:
        """Until something happens on the connection (or `deadline`, loop time: `Expired`)."""
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_at(deadline, _expire, waiter) if deadline is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def read_head(self, deadline: float | None) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self.wait(deadline)

    async def read(self, deadline: float | None) -> bytes:
        """What the body brought since the last read; b"" at its end."""
        while True:
            if self._chunks:
                chunks = self._chunks
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return data
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self.wait(deadline)

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and self.error is None and not self.closed

    def recycle(self, now: float) -> None:
        self.active = False
        self.reused = True
        self.idle_since = now
        self._reset()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: H1Error) -> None:
        if self.error is None:
            self.error = error
        self.keep_alive = False
        self.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(Expired())


class H1Pool:
    """Idle keep-alive connections per origin, most recently used first; `max_connections` (0:
    unbounded) bounds the connections in use at once."""

    def __init__(self, max_connections: int = 0, keepalive_timeout: float = 30.0,
                 unix_socket: str | None = None) -> None:
        self.keepalive_timeout = keepalive_timeout
        self.unix_socket = unix_socket
        self._idle: dict[tuple[str, str, int], list[H1Connection]] = {}
        self._limit = asyncio.Semaphore(max_connections) if max_connections > 0 else None
        self._ssl: ssl.SSLContext | None = None
        self._all: set[H1Connection] = set()

    async def acquire(self, origin: tuple[str, str, int], connect_deadline: float | None,
                      fresh: bool = False) -> H1Connection:
        """A connection to `origin` (scheme, host, port): an idle one unless `fresh`, else a new one."""
        if self._limit is not None:
            await self._limit.acquire()
        try:
            loop = asyncio.get_running_loop()
            idle = self._idle.get(origin)
            if idle and not fresh:
                now = loop.time()
                while idle:
                    conn = idle.pop()
                    if (conn.closed or now - conn.idle_since > self.keepalive_timeout
                            or conn.transport is None or conn.transport.is_closing()):
                        conn.close()
                        self._all.discard(conn)
                        continue
                    return conn
            return await self._connect(loop, origin, connect_deadline)
        except BaseException:
            if self._limit is not None:
                self._limit.release()
            raise

    def release(self, conn: H1Connection) -> None:
        """The exchange on `conn` is over: pool it if its response was read to the end, else close it."""
        if conn.reusable():
            loop = conn.loop
            now = loop.time()
            conn.recycle(now)
            idle = self._idle.setdefault(conn.origin, [])
            if idle and now - idle[0].idle_since > self.keepalive_timeout:  # the longest idle: expired
                stale = idle.pop(0)
                stale.close()
                self._all.discard(stale)
            idle.append(conn)
        else:
            conn.close()
            self._all.discard(conn)
        if self._limit is not None:
            self._limit.release()

    async def _connect(self, loop: asyncio.AbstractEventLoop, origin: tuple[str, str, int],
                       deadline: float | None) -> H1Connection:
        scheme, host, port = origin
        try:
            async with asyncio.timeout_at(deadline):
                if self.unix_socket:
                    _, conn = await loop.create_unix_connection(lambda: H1Connection(loop), self.unix_socket)
                elif scheme == "https":
                    if self._ssl is None:
                        self._ssl = ssl.create_default_context()
                    _, conn = await loop.create_connection(lambda: H1Connection(loop), host, port,
                                                           ssl=self._ssl, server_hostname=host)
                else:
                    _, conn = await loop.create_connection(lambda: H1Connection(loop), host, port)
        except TimeoutError:
            raise Expired() from None
        except ssl.SSLError as exc:
            raise ConnectFailed(f"TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise ConnectFailed(exc.strerror or str(exc) or type(exc).__name__) from None
        conn.origin = origin
        self._all.add(conn)
        return conn

    async def aclose(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing
