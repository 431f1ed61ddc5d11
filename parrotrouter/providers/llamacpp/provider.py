"""The `llamacpp` provider: OpenAI chat semantics on a local GGUF model.

Defaults follow OpenAI, not llama-cpp-python: temperature 1.0, top_p 1.0, no top-k/min-p/repeat
penalty; `max_tokens` defaults to DEFAULT_MAX_TOKENS, bounded by what is left of the context.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from typing import Any

from ...catalog import LocalModelFile, ProviderSpec
from ...errors import ContextLengthExceeded
from ...protocol.chat import ChatCompletionRequest
from ..base import ChatCall, CompletionCall, Provider
from ..lazy import LazyModel
from . import legacy
from .engine import Engine, Sampling, Step
from .prompt import chat_messages, forced_function, grammar_for, tool_instruction
from .worker import Emit, ModelWorker

DEFAULT_MAX_TOKENS = 2048


class LlamaCppProvider(Provider):
    """The model is loaded on its first request (`providers/lazy.py`), not at start-up."""

    def __init__(self, spec: ProviderSpec) -> None:
        super().__init__(spec)
        assert spec.local is not None
        self.local: LocalModelFile = spec.local
        self.engine: Engine | None = None
        self.worker = ModelWorker(spec.name, spec.local.queue_size)
        self._format: Any = None
        self.model: LazyModel[Engine] = LazyModel(spec.name, self._load)

    async def _load(self) -> Engine:
        engine: Engine = await self.worker.call(Engine, self.local.path, self.local.context_length, self.local.threads)
        self._format = self._formatter(engine)
        self.engine = engine
        return engine

    async def loaded(self) -> Engine:
        """The engine, loaded by the first request that needs it (later ones wait for that load)."""
        return self.engine if self.engine is not None else await self.model.get()

    async def aclose(self) -> None:
        self.model.cancel()
        self.worker.shutdown()

    def ready(self) -> bool:
        return self.model.ready()

    def _formatter(self, engine: Engine) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        meta = engine.metadata()
        template = self.local.chat_format or meta.get("tokenizer.chat_template")
        if not template:
            raise RuntimeError(f"{self.local.path} has no chat template; set chat_format in the config")
        eos = engine.llm._model.token_get_text(engine.eos)
        bos = engine.llm._model.token_get_text(engine.llm.token_bos())
        return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                   stop_token_ids=[engine.eos])

    # ------------------------------------------------------------------ shared
    def _engine(self) -> Engine:
        assert self.engine is not None, "awaited `loaded()` first"
        return self.engine

    def check_prompt(self, prompt_len: int, requested: int | None) -> int:
        """The output budget for a prompt of this length; 400 when it cannot fit."""
        n_ctx = self._engine().n_ctx
        if prompt_len >= n_ctx:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {n_ctx} tokens; the prompt has {prompt_len}.",
                param="messages")
        room = n_ctx - prompt_len
        if requested is not None and requested > room:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {n_ctx} tokens. However, you requested "
                f"{prompt_len + requested} tokens ({prompt_len} in the prompt, {requested} for the "
                "completion). Reduce the prompt or max_tokens.", param="max_tokens")
        return requested if requested is not None else min(DEFAULT_MAX_TOKENS, room)

    @staticmethod
    def sampling(request: Any, max_tokens: int, *, grammar: Any = None, logprobs: int | None = None) -> Sampling:
        bias = {int(k): float(v) for k, v in (request.logit_bias or {}).items() if k.lstrip("-").isdigit()}
        return Sampling(
            max_tokens=max_tokens,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            seed=request.seed, stop=tuple(request.stop_list), grammar=grammar, logprobs=logprobs,
            logit_bias=bias or None,
        )

    # ------------------------------------------------------------------ chat
    def _chat_job(self, request: ChatCompletionRequest) -> Any:
        engine = self._engine()
        tool = forced_function(request)
        messages = chat_messages(request, tool_instruction(tool) if tool else None)
        grammar = grammar_for(request, tool)

        def job(cancel: threading.Event, emit: Emit) -> None:
            formatted = self._format(messages=messages)
            prompt = engine.tokenize(formatted.prompt, add_bos=not formatted.added_special)
            max_tokens = self.check_prompt(len(prompt), request.output_limit)
            logprobs = (request.top_logprobs or 0) if request.logprobs else None
            sampling = self.sampling(request, max_tokens, grammar=grammar, logprobs=logprobs)
            emit(("prompt", len(prompt)))
            for index in range(request.n or 1):
                for step in engine.generate(prompt, sampling, cancel):
                    emit((index, step))

        return job, tool

    async def chat(self, call: ChatCall) -> dict[str, Any]:
        await self.loaded()
        job, tool = self._chat_job(call.request)
        texts: dict[int, list[str]] = {}
        logprobs: dict[int, list[dict[str, Any]]] = {}
        finish: dict[int, str] = {}
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        async for item in self.worker.run(job):
            if item[0] == "prompt":
                usage["prompt_tokens"] = item[1]
                continue
            index, step = item
            texts.setdefault(index, []).append(step.text)
            usage["completion_tokens"] += len(step.tokens)
            if step.logprobs is not None:
                logprobs.setdefault(index, []).extend(self._chat_logprobs(step))
            if step.finish_reason:
                finish[index] = step.finish_reason
        choices = []
        for index in sorted(texts):
            text = "".join(texts[index])
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            reason = finish.get(index, "stop")
            if tool is not None:
                message["content"] = None
                message["tool_calls"] = [{"id": "call_" + os.urandom(12).hex(), "type": "function",
                                          "function": {"name": tool.function.name, "arguments": text}}]
                reason = "tool_calls" if reason == "stop" else reason
            lp = {"content": logprobs.get(index, []), "refusal": None} if call.request.logprobs else None
            choices.append({"index": index, "message": message, "logprobs": lp, "finish_reason": reason})
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {"object": "chat.completion", "choices": choices, "usage": usage}

    async def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]:
        await self.loaded()
        job, tool = self._chat_job(call.request)
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        started: set[int] = set()
        call_id = "call_" + os.urandom(12).hex()
        async for item in self.worker.run(job):
            if item[0] == "prompt":
                usage["prompt_tokens"] = item[1]
                continue
            index, step = item
            usage["completion_tokens"] += len(step.tokens)
            delta: dict[str, Any] = {}
            if index not in started:
                started.add(index)
                delta["role"] = "assistant"
                if tool is not None:
                    delta["content"] = None
                    delta["tool_calls"] = [{"index": 0, "id": call_id, "type": "function",
                                            "function": {"name": tool.function.name, "arguments": step.text}}]
            elif tool is not None and step.text:
                delta["tool_calls"] = [{"index": 0, "function": {"arguments": step.text}}]
            if tool is None and (step.text or "role" in delta):
                delta["content"] = step.text
            reason = step.finish_reason
            if tool is not None and reason == "stop":
                reason = "tool_calls"
            if not delta and reason is None:
                continue
            choice: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": reason}
            if call.request.logprobs:
                choice["logprobs"] = {"content": self._chat_logprobs(step), "refusal": None}
            yield [{"object": "chat.completion.chunk", "choices": [choice]}]
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        yield [{"object": "chat.completion.chunk", "choices": [], "usage": usage}]

    def _chat_logprobs(self, step: Step) -> list[dict[str, Any]]:
        engine = self._engine()
        out = []
        for token, lp, top in zip(step.tokens, step.logprobs or (), step.top_logprobs or (), strict=False):
            raw = engine.token_bytes(token)
            out.append({"token": raw.decode("utf-8", errors="replace"), "logprob": lp, "bytes": list(raw),
                        "top_logprobs": [{"token": engine.token_text(t), "logprob": v,
                                          "bytes": list(engine.token_bytes(t))} for t, v in top]})
        return out

    # ------------------------------------------------------------------ text completions
    async def completion(self, call: CompletionCall) -> dict[str, Any]:
        return await legacy.complete(self, call)

    def completion_stream(self, call: CompletionCall) -> AsyncIterator[list[dict[str, Any]]]:
        return legacy.complete_stream(self, call)
