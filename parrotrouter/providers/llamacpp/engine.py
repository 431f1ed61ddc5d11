"""Token-by-token generation on one llama.cpp model (synchronous; runs on the model's thread).

Our own loop over `Llama.generate` instead of `create_completion`, so that usage is exact (the
tokens actually sampled), stop sequences never leak into the text, UTF-8 split across tokens is
decoded incrementally, logprobs come from the last logits row (no `logits_all` buffer), and a
cancelled request stops between two tokens.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy comes with llama_cpp, imported when the model is loaded
    import numpy as np


@dataclasses.dataclass(frozen=True, slots=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    grammar: Any = None  # llama_cpp.LlamaGrammar
    logprobs: int | None = None  # None: none; 0..20: the sampled token's, plus that many alternatives
    logit_bias: dict[int, float] | None = None


@dataclasses.dataclass(slots=True)
class Step:
    """Text produced by one or more tokens; `finish_reason` set on the last step."""

    text: str
    tokens: list[int]
    logprobs: list[float] | None = None
    top_logprobs: list[list[tuple[int, float]]] | None = None
    finish_reason: str | None = None


def _holdback(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that could be the start of a stop sequence."""
    best = 0
    for stop in stops:
        for i in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:i]):
                best = i
                break
    return best


class Cancelled(Exception):
    pass


def default_threads() -> int:
    # Measured on 2 cores: one llama.cpp thread beats two whenever anything else runs.
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(8, cores // 2)


class Engine:
    def __init__(self, path: str, n_ctx: int | None = None, threads: int | None = None) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        probe_ctx = n_ctx or 512
        self.llm = llama_cpp.Llama(model_path=path, n_ctx=probe_ctx, n_threads=threads or default_threads(),
                                   n_threads_batch=threads or default_threads(), verbose=False)
        train_ctx = self.llm._model.n_ctx_train()
        if n_ctx is None:
            wanted = min(train_ctx, 8192)
            if wanted != probe_ctx:
                self.llm = llama_cpp.Llama(model_path=path, n_ctx=wanted, n_threads=threads or default_threads(),
                                           n_threads_batch=threads or default_threads(), verbose=False)
        self.n_ctx = self.llm.n_ctx()
        self.eos = self.llm.token_eos()
        self.vocab = self.llm._model.vocab

    # ------------------------------------------------------------------ tokens
    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = True) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def token_text(self, token: int) -> str:
        return self.llm.detokenize([token]).decode("utf-8", errors="replace")

    def token_bytes(self, token: int) -> bytes:
        return self.llm.detokenize([token])

    def is_eog(self, token: int) -> bool:
        return bool(self._llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def fim_tokens(self) -> tuple[int, int, int] | None:
        model = self.llm._model
        pre, suf, mid = model.token_prefix(), model.token_suffix(), model.token_middle()
        return (pre, suf, mid) if min(pre, suf, mid) >= 0 else None

    def metadata(self) -> dict[str, str]:
        return dict(self.llm.metadata)

    # ------------------------------------------------------------------ generation
    def generate(self, prompt: Sequence[int], sampling: Sampling, cancel: threading.Event) -> Iterator[Step]:
        """Yield text steps until EOS, a stop sequence, `max_tokens` or cancellation."""
        llm = self.llm
        llm.set_seed(sampling.seed if sampling.seed is not None else int.from_bytes(os.urandom(4), "little"))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = sampling.stop
        pending = ""  # text not yet released: it may be the start of a stop sequence
        tokens: list[int] = []
        lps: list[float] = []
        tops: list[list[tuple[int, float]]] = []
        want_lp = sampling.logprobs is not None
        processors = None
        if sampling.logit_bias:
            bias = sampling.logit_bias

            def apply_bias(_ids: Any, scores: np.ndarray) -> np.ndarray:
                for tok, value in bias.items():
                    scores[tok] += value
                return scores

            processors = self._llama_cpp.LogitsProcessorList([apply_bias])
        count = 0
        finish = "length"
        if sampling.max_tokens <= 0:
            yield Step("", [], finish_reason="length")
            return
        generator = llm.generate(
            list(prompt), top_k=0, top_p=sampling.top_p, min_p=0.0, typical_p=1.0,
            temp=sampling.temperature, repeat_penalty=1.0, frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty, grammar=sampling.grammar, logits_processor=processors,
        )
        try:
            for token in generator:
                if cancel.is_set():
                    raise Cancelled()
                if self.is_eog(token):
                    finish = "stop"
                    break
                count += 1
                tokens.append(token)
                if want_lp:
                    lp, top = self._logprobs(token, sampling.logprobs or 0)
                    lps.append(lp)
                    tops.append(top)
                pending += decoder.decode(llm.detokenize([token], prev_tokens=None))
                if stops:
                    hit = min((i for s in stops if (i := pending.find(s)) >= 0), default=-1)
                    if hit >= 0:
                        pending = pending[:hit]
                        finish = "stop"
                        break
                    release = len(pending) - _holdback(pending, stops)
                else:
                    release = len(pending)
                if release > 0:
                    yield self._step(pending[:release], tokens, lps, tops, want_lp)
                    pending = pending[release:]
                    tokens, lps, tops = [], [], []
                if count >= sampling.max_tokens:
                    break
                if self._context_full():
                    break
        finally:
            generator.close()
        pending += decoder.decode(b"", final=True)
        step = self._step(pending, tokens, lps, tops, want_lp)
        step.finish_reason = finish
        yield step

    def _context_full(self) -> bool:
        return self.llm.n_tokens >= self.n_ctx - 1

    @staticmethod
    def _step(text: str, tokens: list[int], lps: list[float], tops: list[list[tuple[int, float]]],
              want_lp: bool) -> Step:
        return Step(text, tokens, lps if want_lp else None, tops if want_lp else None)

    def _logprobs(self, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
        # The logits the sampler just drew from (the last decoded position); without `logits_all`
        # llama-cpp-python no longer copies them into `Llama.scores`.
        import numpy as np

        row = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self.llm.n_vocab(),))
        logits = row.astype(np.float64)
        peak = logits.max()
        logsum = peak + np.log(np.exp(logits - peak).sum())
        lp = float(logits[token] - logsum)
        if top <= 0:
            return lp, []
        idx = np.argpartition(-logits, top)[:top]
        idx = idx[np.argsort(-logits[idx])]
        return lp, [(int(i), float(logits[i] - logsum)) for i in idx]
