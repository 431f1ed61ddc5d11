"""A transport that answers canned bodies: adapters and `HttpProvider` tested without sockets."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping

from parrotrouter.upstream.client import ServerSentEvent, StreamParser, UpstreamRequest, UpstreamResponse


@dataclasses.dataclass
class Canned:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    reads: int = 1  # a streamed body arrives in this many reads


class CannedTransport:
    """Answers each request with the next canned response; records what was sent."""

    def __init__(self, *answers: Canned) -> None:
        self.answers = list(answers)
        self.sent: list[UpstreamRequest] = []
        self.closed = False

    @contextlib.asynccontextmanager
    async def open(self, request: UpstreamRequest) -> AsyncIterator[UpstreamResponse]:
        self.sent.append(request)
        answer = self.answers.pop(0)
        yield UpstreamResponse(answer.status, answer.headers, answer)

    async def read_body(self, response: UpstreamResponse, limit: int = 64 * 2**20) -> bytes:
        assert isinstance(response.raw, Canned)
        return response.raw.body[:limit + 1]

    async def stream_events(self, response: UpstreamResponse,
                            parser: StreamParser) -> AsyncIterator[list[ServerSentEvent]]:
        assert isinstance(response.raw, Canned)
        body, parts = response.raw.body, max(1, response.raw.reads)
        size = -(-len(body) // parts)
        for i in range(0, len(body), size):
            if events := parser.feed(body[i:i + size]):
                yield events
        if rest := parser.close():
            yield rest

    async def aclose(self) -> None:
        self.closed = True
