"""The lean HTTP/1.1 upstream client against real servers on loopback that answer raw bytes."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from parrotrouter.catalog import Timeouts
from parrotrouter.errors import FailureKind, UpstreamFailure
from parrotrouter.upstream.client import SSEParser, UpstreamRequest
from parrotrouter.upstream.lean_client import LeanUpstreamClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server; `handler` runs once per connection and speaks raw HTTP."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()  # a connection was closed by the client
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and Content-Length body); None when the client closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed.set()
            return None
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return head + body


def answer(body: bytes, *extra: str) -> bytes:
    head = "\r\n".join(("HTTP/1.1 200 OK", f"Content-Length: {len(body)}", "Content-Type: application/json", *extra))
    return head.encode() + b"\r\n\r\n" + body


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


TIMEOUTS = Timeouts(connect=2, first_token=5, idle=5, total=10)


def post(client: LeanUpstreamClient, stream: bool = False, **headers: str) -> UpstreamRequest:
    return UpstreamRequest(client.url("/chat/completions"), b'{"x":1}',
                           {"Content-Type": "application/json", **headers}, stream)


async def fetch(client: LeanUpstreamClient, **kw: Any) -> tuple[int, Any, bytes]:
    async with client.open(post(client)) as resp:
        return resp.status, resp.headers, await client.read_body(resp, **kw)


async def failure_of(client: LeanUpstreamClient, **kw: Any) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as info:
        await fetch(client, **kw)
    return info.value


async def test_keep_alive_reuse_and_request_bytes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        while await srv.request(reader) is not None:
            writer.write(answer(b'{"ok":true}', "Retry-After: 3"))

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        for _ in range(3):
            status, headers, body = await fetch(client)
            assert (status, body, headers["retry-after"], headers["CONTENT-TYPE"]) == (
                200, b'{"ok":true}', "3", "application/json")
        await client.aclose()
    assert srv.connections == 1
    head = srv.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /v1/chat/completions HTTP/1.1"
    names = [line.split(b":")[0].lower() for line in head[1:]]
    assert b"host" in names and b"content-length" in names
    assert b"user-agent" not in names and b"accept-encoding" not in names


async def test_chunked_body_and_encoded_url_sent_as_is() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        while await srv.request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b'{"a":', b"1}"))

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        assert (await fetch(client))[2] == b'{"a":1}'
        signed = UpstreamRequest(client.url("/model/a%3Ab/invoke?x=%2F"), b"{}", {}, False, encoded_url=True)
        async with client.open(signed) as resp:
            assert await client.read_body(resp) == b'{"a":1}'
        await client.aclose()
    assert srv.requests[1].startswith(b"POST /v1/model/a%3Ab/invoke?x=%2F HTTP/1.1\r\n")
    assert srv.connections == 1


async def test_gzip_body_is_decoded_and_limited_after_decoding() -> None:
    payload = b'{"big":"' + b"a" * 100_000 + b'"}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        while await srv.request(reader) is not None:
            writer.write(answer(gzip.compress(payload), "Content-Encoding: gzip"))

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        assert (await fetch(client))[2] == payload
        failure = await failure_of(client, limit=50_000)
        assert failure.kind == FailureKind.STREAM_PROTOCOL and "too large" in str(failure)
        await client.aclose()


async def test_oversized_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        while await srv.request(reader) is not None:
            writer.write(answer(b"x" * 1000))

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        failure = await failure_of(client, limit=999)
        assert failure.kind == FailureKind.STREAM_PROTOCOL and "too large" in str(failure)
        assert (await fetch(client, limit=1000))[2] == b"x" * 1000
        await client.aclose()


async def test_server_closing_a_pooled_connection_is_retried_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        await srv.request(reader)  # one answer per connection, then close (keep-alive announced)
        writer.write(answer(b"{}"))
        await writer.drain()

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        for _ in range(3):
            assert (await fetch(client))[0] == 200
            await asyncio.sleep(0.05)
        await client.aclose()
    assert srv.connections == 3


async def test_server_closing_without_answer_twice_is_a_connection_failure() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        await srv.request(reader)

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        assert (await failure_of(client)).kind == FailureKind.CONNECTION
        await client.aclose()
    assert srv.connections == 2


async def test_connect_refused() -> None:
    async with Server(lambda r, w, s: asyncio.sleep(0)) as srv:
        url = srv.url
    client = LeanUpstreamClient(url, TIMEOUTS)
    failure = await failure_of(client)
    assert failure.kind == FailureKind.CONNECTION and "Cannot connect" in str(failure)
    await client.aclose()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
    await srv.request(reader)
    await reader.read()  # never answers


async def test_total_timeout() -> None:
    async with Server(_silent) as srv:
        client = LeanUpstreamClient(srv.url, Timeouts(connect=1, first_token=5, idle=5, total=0.2))
        failure = await failure_of(client)
        assert failure.kind == FailureKind.TIMEOUT and "total" in str(failure)
        await client.aclose()


async def test_stream_first_token_and_idle_timeouts() -> None:
    async def one_event_then_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        await srv.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(chunked(b"data: 1\n\n")[:-5])
        await reader.read()

    timeouts = Timeouts(connect=1, first_token=0.2, idle=0.3, total=10)
    async with Server(_silent) as srv:
        client = LeanUpstreamClient(srv.url, timeouts)
        with pytest.raises(UpstreamFailure) as info:
            async with client.open(post(client, stream=True)):
                pass
        assert info.value.kind == FailureKind.TIMEOUT and "first token" in str(info.value)
        await client.aclose()
    async with Server(one_event_then_silence) as srv:
        client = LeanUpstreamClient(srv.url, timeouts)
        seen = []
        with pytest.raises(UpstreamFailure) as info:
            async with client.open(post(client, stream=True)) as resp:
                async for events in client.stream_events(resp, SSEParser()):
                    seen += [e.data for e in events]
        assert seen == ["1"]
        assert info.value.kind == FailureKind.TIMEOUT and "no data" in str(info.value)
        await client.aclose()


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\n{}",
    b"garbage\r\n\r\n",
])
async def test_malformed_status_line(reply: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        await srv.request(reader)
        writer.write(reply)
        await reader.read()

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        assert (await failure_of(client)).kind == FailureKind.STREAM_PROTOCOL
        await client.aclose()


@pytest.mark.parametrize("head", [
    b"".join(b"X-H%d: v\r\n" % i for i in range(300)),  # too many headers
    b"X-Big: " + b"a" * (70 * 1024) + b"\r\n",  # one huge header
    b"".join(b"X-H%d: " % i + b"b" * 1000 + b"\r\n" for i in range(100)),  # too many bytes
])
async def test_an_endless_response_head_is_refused(head: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        await srv.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + head)  # and more would follow, until a timeout
        await writer.drain()
        await reader.read()

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        failure = await failure_of(client)
        assert failure.kind == FailureKind.STREAM_PROTOCOL and "too large" in str(failure), failure
        await client.aclose()


async def test_malformed_chunk_and_cut_body() -> None:
    replies = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
               b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        await srv.request(reader)
        writer.write(replies[srv.connections - 1])
        await writer.drain()

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        for _ in replies:
            assert (await failure_of(client)).kind == FailureKind.STREAM_PROTOCOL
        await client.aclose()


async def test_stream_read_event_by_event_then_reused() -> None:
    go = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        while await srv.request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(chunked(b"data: 1\n\n")[:-5])
            await go.wait()
            writer.write(chunked(b"data: 2\n\n", b"data: [DONE]\n\n"))

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        for _ in range(2):
            go.clear()
            seen = []
            async with client.open(post(client, stream=True)) as resp:
                async for events in client.stream_events(resp, SSEParser()):
                    seen.append([e.data for e in events])
                    go.set()
            assert seen[0] == ["1"] and [d for batch in seen[1:] for d in batch] == ["2", "[DONE]"]
        await client.aclose()
    assert srv.connections == 1


async def test_cancelled_stream_closes_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        first = srv.connections == 1
        while await srv.request(reader) is not None:
            if not first:
                writer.write(answer(b"{}"))
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(chunked(b"data: 1\n\n")[:-5])  # and never the end
            await writer.drain()

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        got_one = asyncio.Event()

        async def consume() -> None:
            async with client.open(post(client, stream=True)) as resp:
                async for _ in client.stream_events(resp, SSEParser()):
                    got_one.set()

        task = asyncio.create_task(consume())
        await got_one.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(srv.closed.wait(), 5)  # the server saw the connection close
        assert (await fetch(client))[2] == b"{}"  # a new connection answers the next request
        assert srv.connections == 2
        await client.aclose()


@pytest.mark.parametrize("headers", [{"X-Evil": "a\r\nX-Injected: 1"}, {"X-Evil": "a\nb"},
                                     {"X-Evil": "a\x00"}, {"X-Bad\r\nName": "v"}, {"": "v"}])
async def test_header_injection_is_refused(headers: dict[str, str]) -> None:
    async with Server(_silent) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        with pytest.raises(UpstreamFailure) as info:
            async with client.open(UpstreamRequest(client.url("/x"), b"{}", headers, False)):
                pass
        assert info.value.kind == FailureKind.BAD_REQUEST
        await client.aclose()
    assert srv.requests == []


async def test_unix_socket(tmp_path: Any) -> None:
    path = str(tmp_path / "upstream.sock")
    srv = Server(lambda r, w, s: _answer_all(r, w, s))
    server = await asyncio.start_unix_server(srv._serve, path)
    try:
        client = LeanUpstreamClient("http://localhost/v1", TIMEOUTS, unix_socket=path)
        assert [(await fetch(client))[2] for _ in range(2)] == [b"{}", b"{}"]
        await client.aclose()
    finally:
        server.close()
        for writer in srv.writers:
            writer.close()
        await server.wait_closed()
    assert srv.connections == 1 and srv.requests[0].split(b"\r\n")[1] == b"Host: localhost"


async def _answer_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
    while await srv.request(reader) is not None:
        writer.write(answer(b"{}"))


async def test_body_until_the_connection_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, srv: Server) -> None:
        await srv.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":")
        await writer.drain()
        writer.write(b"1}")

    async with Server(handler) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS)
        assert [(await fetch(client))[2] for _ in range(2)] == [b'{"a":1}', b'{"a":1}']
        await client.aclose()
    assert srv.connections == 2  # never pooled


async def test_max_connections_bounds_the_connections_in_use() -> None:
    async with Server(_answer_all) as srv:
        client = LeanUpstreamClient(srv.url, TIMEOUTS, max_connections=1)
        bodies = await asyncio.gather(*(fetch(client) for _ in range(5)))
        assert [body for _, _, body in bodies] == [b"{}"] * 5
        await client.aclose()
    assert srv.connections == 1
