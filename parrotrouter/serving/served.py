"""What the serving core's shared steps (plan, admit, reserve, record) ask of a request, whatever
API it came from: the chat and completions `GenerationRequest` and the `EmbeddingRequest` both
offer it."""

from __future__ import annotations

from typing import Protocol

from ..accounting.bounds import Billable
from ..catalog import ModelSpec
from ..errors import InvalidRequest
from ..routing.router import Plan
from .request import Shape


class Served(Protocol):
    @property
    def shape(self) -> Shape: ...  # the ledger's endpoint name and the record's id prefix

    @property
    def model(self) -> str: ...

    @property
    def stream(self) -> bool: ...

    @property
    def user(self) -> str | None: ...

    @property
    def body_size(self) -> int: ...

    @property
    def output_limit(self) -> int | None: ...

    @property
    def sent_params(self) -> frozenset[str]: ...

    def needs(self) -> tuple[bool, bool, bool]: ...

    def mismatch(self, model: ModelSpec) -> str | None:
        """Why `model` cannot serve this kind of request (an embedding model a chat request, a
        chat model an embeddings request), or None."""
        ...

    def count_prompt(self, model: str) -> int: ...

    def billable(self, model: str, output_cap: int) -> Billable: ...

    def cheap_billable(self, output_cap: int) -> Billable: ...


def keep_serving(request: Served, plan: Plan) -> None:
    """Only the plan's models that serve this kind of request (chat, completions, embeddings);
    400 naming `model` when none does."""
    if all(request.mismatch(cand.model) is None for cand in plan.candidates):
        return  # the usual case: nothing to drop
    kept = [cand for cand in plan.candidates if request.mismatch(cand.model) is None]
    if not kept:
        reason = request.mismatch(plan.candidates[0].model)
        raise InvalidRequest(reason or "No model of this request serves it.", param="model")
    plan.candidates = kept
