"""`/v1/completions` on a local model: raw prompts, echo, suffix (FIM models), logprobs, n, best_of."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ...errors import InvalidRequest
from ...protocol.completions import CompletionRequest
from ..base import CompletionCall
from .engine import Engine, Step
from .worker import Emit

if TYPE_CHECKING:
    from .provider import LlamaCppProvider

DEFAULT_MAX_TOKENS = 16  # OpenAI's documented default for this endpoint


def _prompts(engine: Engine, request: CompletionRequest) -> list[tuple[list[int], str]]:
    """Each prompt as (tokens to evaluate, text to echo)."""
    raw = request.prompt
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif raw and all(isinstance(x, int) for x in raw):
        items = [raw]
    else:
        items = list(raw)
    fim = engine.fim_tokens() if request.suffix is not None else None
    if request.suffix is not None and fim is None:
        raise InvalidRequest("This local model has no fill-in-the-middle tokens, so 'suffix' is not "
                             "supported.", param="suffix")
    out = []
    for item in items:
        if isinstance(item, str):
            text = item
            tokens = engine.tokenize(item, add_bos=fim is None, special=False)
        else:
            tokens = [int(t) for t in item]
            text = engine.llm.detokenize(tokens).decode("utf-8", errors="replace")
        if fim is not None:
            pre, suf, mid = fim
            tokens = [pre, *tokens, suf, *engine.tokenize(request.suffix or "", add_bos=False), mid]
        out.append((tokens, text))
    return out


def _job(provider: LlamaCppProvider, request: CompletionRequest, runs: int, logprobs: int | None) -> Any:
    engine = provider._engine()
    prompts = _prompts(engine, request)
    if request.echo and request.logprobs is not None:
        raise InvalidRequest("Local models do not compute log probabilities of prompt tokens, so 'echo' "
                             "cannot be combined with 'logprobs'.", param="logprobs")
    budgets = [provider.check_prompt(len(tokens), request.max_tokens if request.max_tokens is not None
                                     else None) for tokens, _ in prompts]

    def job(cancel: threading.Event, emit: Emit) -> None:
        for p, ((tokens, _), budget) in enumerate(zip(prompts, budgets, strict=True)):
            max_tokens = budget if request.max_tokens is not None else min(DEFAULT_MAX_TOKENS, budget)
            sampling = provider.sampling(request, max_tokens, logprobs=logprobs)
            emit(("prompt", len(tokens)))
            for run in range(runs):
                for step in engine.generate(tokens, sampling, cancel):
                    emit((p, run, step))

    return job, prompts


def _legacy_logprobs(engine: Engine, steps: list[Step], offset: int) -> dict[str, Any]:
    tokens: list[str] = []
    token_lps: list[float] = []
    tops: list[dict[str, float]] = []
    offsets: list[int] = []
    for step in steps:
        for token, lp, top in zip(step.tokens, step.logprobs or (), step.top_logprobs or (), strict=False):
            text = engine.token_text(token)
            tokens.append(text)
            token_lps.append(lp)
            tops.append({engine.token_text(t): v for t, v in top})
            offsets.append(offset)
            offset += len(text)
    return {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets}


async def complete(provider: LlamaCppProvider, call: CompletionCall) -> dict[str, Any]:
    await provider.loaded()
    request = call.request
    n = request.n or 1
    runs = request.best_of or n
    need_lp = request.logprobs is not None or runs > n
    job, prompts = _job(provider, request, runs, (request.logprobs or 0) if need_lp else None)
    results: dict[tuple[int, int], list[Step]] = {}
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    async for item in provider.worker.run(job):
        if item[0] == "prompt":
            usage["prompt_tokens"] += item[1]
            continue
        p, run, step = item
        results.setdefault((p, run), []).append(step)
        usage["completion_tokens"] += len(step.tokens)
    engine = provider._engine()
    choices = []
    for p, (_, prompt_text) in enumerate(prompts):
        runs_of_p = [results.get((p, r), []) for r in range(runs)]
        if runs > n:  # best_of: keep the n with the highest mean token log probability
            runs_of_p.sort(key=_mean_logprob, reverse=True)
        for rank, steps in enumerate(runs_of_p[:n]):
            head = prompt_text if request.echo else ""
            text = head + "".join(s.text for s in steps)
            lp = _legacy_logprobs(engine, steps, len(head)) if request.logprobs is not None else None
            reason = next((s.finish_reason for s in reversed(steps) if s.finish_reason), "stop")
            choices.append({"index": p * n + rank, "text": text, "logprobs": lp, "finish_reason": reason})
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {"object": "text_completion", "choices": choices, "usage": usage}


def _mean_logprob(steps: list[Step]) -> float:
    values = [v for s in steps for v in (s.logprobs or ())]
    return sum(values) / len(values) if values else float("-inf")


async def complete_stream(provider: LlamaCppProvider, call: CompletionCall) -> AsyncIterator[list[dict[str, Any]]]:
    await provider.loaded()
    request = call.request
    n = request.n or 1
    job, prompts = _job(provider, request, n, request.logprobs)
    engine = provider._engine()
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    offsets: dict[int, int] = {}
    async for item in provider.worker.run(job):
        if item[0] == "prompt":
            usage["prompt_tokens"] += item[1]
            continue
        p, run, step = item
        index = p * n + run
        usage["completion_tokens"] += len(step.tokens)
        text = step.text
        if index not in offsets:
            offsets[index] = 0
            if request.echo:
                text = prompts[p][1] + text
        lp = None
        if request.logprobs is not None:
            lp = _legacy_logprobs(engine, [step], offsets[index] + len(text) - len(step.text))
        offsets[index] += len(text)
        if text or step.finish_reason:
            yield [{"object": "text_completion",
                    "choices": [{"index": index, "text": text, "logprobs": lp, "finish_reason": step.finish_reason}]}]
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    yield [{"object": "text_completion", "choices": [], "usage": usage}]
