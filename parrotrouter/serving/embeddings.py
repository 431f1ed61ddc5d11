"""Serve one embeddings request through the serving core: the same plan, rate limits, credit
reservation, attempts with failover and ledger record as a chat completion (`core._Work`), with
the provider's `embeddings` call instead of a generation.

The answer has OpenAI's shape. Vectors are sent as the client asked (`encoding_format`): float
lists, or base64 of little-endian float32 — the upstream's own base64 when it encoded them, else
encoded here. Prompt tokens are the upstream's count when it reports one, else cl100k_base's
(counted at the edge); embeddings have no completion tokens.
"""

from __future__ import annotations

import array
import asyncio
import base64
import dataclasses
import sys
from typing import Any

from ..accounting.bounds import Billable, exact_tokenizer
from ..catalog import ModelSpec
from ..errors import ParrotError, echo
from ..protocol.normalize import is_count
from ..protocol.routing_fields import NO_ROUTING, BodyRouting
from ..providers.base import EmbeddingCall, PartsServed, malformed
from ..routing.policy import RoutingPolicy
from ..routing.router import Candidate
from ..state import AppState
from ..tokens import get_encoding
from .context import RequestContext
from .core import _Work
from .request import Shape
from .types import JSONObject

EMBEDDINGS = Shape("embeddings", "embd-", "list", "")
PER_INPUT = 4  # tokens a model may add around each input (BOS/EOS, a task prefix): reserved
MAX_TOKEN_BYTES = 128  # the longest cl100k_base token, in bytes


@dataclasses.dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """An embeddings request, decoded and bounded at the edge. `token_counts`: each input's
    cl100k_base tokens (a token array's length)."""

    model: str
    inputs: list[str] | list[list[int]]
    raw: dict[str, Any]
    body_size: int
    token_counts: tuple[int, ...]
    encoding_format: str = "float"
    dimensions: int | None = None
    user: str | None = None
    routing: BodyRouting = NO_ROUTING
    sent_params: frozenset[str] = frozenset()
    shape: Shape = EMBEDDINGS
    served: PartsServed = dataclasses.field(default_factory=PartsServed)  # by attempts that failed part-way

    # ------------------------------------------------------------------ what the core asks
    @property
    def stream(self) -> bool:
        return False

    @property
    def output_limit(self) -> int:
        return 0

    def needs(self) -> tuple[bool, bool, bool]:
        return False, False, False

    def features(self) -> list[str]:
        return ["embeddings"]

    def mismatch(self, model: ModelSpec) -> str | None:
        if model.capabilities.embeddings:
            return None
        return (f"The model '{echo(model.id)}' is not an embedding model: it cannot serve /v1/embeddings. "
                "GET /v1/models?capability=embeddings lists the models that can.")

    def count_prompt(self, model: str) -> int:
        return sum(self.token_counts)

    def served_tokens(self) -> int:
        """The prompt tokens of the parts that upstreams answered (their count, else ours)."""
        return sum(sum(self.token_counts[start:start + count]) if tokens is None else tokens
                   for start, count, tokens in self.served.parts)

    def billable(self, model: str, output_cap: int) -> Billable:
        """cl100k_base's count for OpenAI's models; for others, the text's bytes (no byte-level
        tokenizer makes more tokens than bytes), token arrays decoded to learn them."""
        if exact_tokenizer(model):
            return Billable(sum(self.token_counts) + PER_INPUT * len(self.inputs), 0)
        return Billable(self._size(precise=True) + PER_INPUT * len(self.inputs), 0)

    def cheap_billable(self, output_cap: int) -> Billable:
        """The same bound without decoding token arrays (a token is at most 128 bytes of text)."""
        return Billable(self._size(precise=False) + PER_INPUT * len(self.inputs), 0)

    def _size(self, *, precise: bool) -> int:
        size = 0
        for item in self.inputs:
            if isinstance(item, str):
                size += len(item.encode("utf-8", "surrogatepass"))
            elif precise:
                try:
                    size += len(get_encoding("cl100k_base").decode_bytes(item))
                except (KeyError, ValueError, OverflowError):  # not cl100k ids: refused when sent
                    size += len(item) * MAX_TOKEN_BYTES
            else:
                size += len(item) * MAX_TOKEN_BYTES
        return size

    # ------------------------------------------------------------------ the provider call
    async def run(self, candidate: Candidate) -> JSONObject:
        call = EmbeddingCall(self.inputs, self.raw, self.dimensions, self.encoding_format, candidate.model,
                             candidate.deployment, self.served)
        answer = await candidate.provider.embeddings(call)
        return _checked(answer, len(self.inputs), self.encoding_format)


async def embed(state: AppState, ctx: RequestContext, request: EmbeddingRequest,
                policy: RoutingPolicy) -> JSONObject:
    """Serve an embeddings request: OpenAI's `list` of embeddings, with its usage."""
    work = _Work(state, ctx, request, policy)
    record = work.record
    try:
        attempts = await work.prepare()
        answer, candidate = await attempts.run(request.run)
        work.attempts_header()
        usage = answer.get("usage")
        if isinstance(usage, dict) and not is_count(usage.get("prompt_tokens")) and is_count(usage.get("total_tokens")):
            usage = {**usage, "prompt_tokens": usage["total_tokens"]}  # no completion: the total is the input
        record.observe_usage(usage)
        record.completion_tokens = 0
        if not record.usage_reported:
            record.prompt_tokens = request.count_prompt(candidate.model.id)
        data = answer["data"]
        assert isinstance(data, list)
        payload: dict[str, Any] = {"prompt_tokens": record.prompt_tokens, "total_tokens": record.prompt_tokens,
                                   "cost": record.answer_cost()}
        return {"object": "list", "data": data,
                "model": candidate.model.id, "provider": candidate.deployment.provider, "usage": payload}
    except ParrotError as err:
        if record.prompt_tokens == 0:  # parts answered before another failed were billed upstream
            record.prompt_tokens = request.served_tokens()
        raise work.failed(err) from None
    except asyncio.CancelledError:
        work.cancelled([])
        raise
    finally:
        work.record_usage()


def _checked(answer: dict[str, Any], count: int, encoding_format: str) -> JSONObject:
    """The provider's answer with one vector per input, in input order and in the client's
    encoding; else a malformed answer (the attempt fails over). Float vectors are checked by their
    first value (the rest came from the same JSON array)."""
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != count:
        raise malformed("embeddings answer (not one vector per input)")
    ordered: list[Any] = [None] * count
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise malformed("embeddings answer")
        index = item.get("index", position)
        vector = item.get("embedding")
        if not (isinstance(index, int) and 0 <= index < count and ordered[index] is None):
            raise malformed("embeddings answer (index)")
        if isinstance(vector, list):
            if not vector or not isinstance(vector[0], int | float) or isinstance(vector[0], bool):
                raise malformed("embeddings answer (vector)")
        elif not (isinstance(vector, str) and vector):
            raise malformed("embeddings answer (vector)")
        ordered[index] = _encoded({"object": "embedding", "index": index, "embedding": vector}, encoding_format)
    answer["data"] = ordered
    out: JSONObject = answer
    return out


def _encoded(item: dict[str, Any], encoding_format: str) -> dict[str, Any]:
    vector = item["embedding"]
    if encoding_format == "base64" and isinstance(vector, list):
        item["embedding"] = to_base64(vector)
    elif encoding_format == "float" and isinstance(vector, str):
        item["embedding"] = from_base64(vector)
    return item


def to_base64(vector: list[float]) -> str:
    """OpenAI's base64 form: little-endian float32 values."""
    try:
        values = array.array("f", vector)
    except TypeError:
        raise malformed("embeddings answer (vector)") from None
    if sys.byteorder != "little":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def from_base64(text: str) -> list[float]:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise malformed("embeddings answer (base64)") from None
    if len(raw) % 4:
        raise malformed("embeddings answer (base64)")
    values = array.array("f")
    values.frombytes(raw)
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()
