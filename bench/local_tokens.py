#!/usr/bin/env python3
"""Tokens per second of the embedded model: llama-cpp-python called directly vs through the gateway.

Same prompt, same sampling settings (temperature 1.0, top_p 1, no top-k/min-p, fixed seed, EOS
banned so every run generates exactly MAX_TOKENS), one llama.cpp thread, stream and non-stream.

    python bench/local_tokens.py            # prints a table; needs the `local` extra
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
import openai

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from parrotrouter.config.loader import embedded_model_path

MAX_TOKENS = int(os.environ.get("MAX_TOKENS", "200"))
RUNS = int(os.environ.get("RUNS", "5"))
MESSAGES = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
KEY = "pr-bench-local-0123456789abcdefghijklmnopqrstuvwxyz"


def direct() -> dict[str, float]:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = llama_cpp.Llama(model_path=embedded_model_path(), n_ctx=8192, n_threads=1, n_threads_batch=1,
                          verbose=False)
    fmt = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
                              bos_token="<|im_start|>")
    prompt = fmt(messages=MESSAGES).prompt
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    args = dict(max_tokens=MAX_TOKENS, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, repeat_penalty=1.0,
                logit_bias={llm.token_eos(): -1e9})
    out: dict[str, list[float]] = {"non-stream": [], "stream": []}
    for run in range(RUNS + 1):
        t = time.perf_counter()
        r = llm.create_completion(tokens, seed=run, **args)
        n = r["usage"]["completion_tokens"]
        if run:
            out["non-stream"].append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        n = sum(1 for _ in llm.create_completion(tokens, seed=run, stream=True, **args))
        if run:
            out["stream"].append(MAX_TOKENS / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in out.items()}


def gateway() -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tempfile.mkdtemp(prefix="pr-bench-")
    env = {**os.environ, "PARROTROUTER_HOME": home, "PARROTROUTER_MASTER_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "parrotrouter", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        eos = "2"  # SmolLM2's <|im_end|>
        args = dict(model="smollm2-135m-instruct", messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=1.0,
                    logit_bias={eos: -100})
        out: dict[str, list[float]] = {"non-stream": [], "stream": []}
        for run in range(RUNS + 1):
            t = time.perf_counter()
            r = client.chat.completions.create(seed=run, **args)
            n = r.usage.completion_tokens
            if run:
                out["non-stream"].append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            usage = None
            for chunk in client.chat.completions.create(seed=run, stream=True,
                                                        stream_options={"include_usage": True}, **args):
                usage = chunk.usage or usage
            if run:
                out["stream"].append(usage.completion_tokens / (time.perf_counter() - t))
        return {k: statistics.median(v) for k, v in out.items()}
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    d = direct()
    g = gateway()
    print(f"embedded model, {MAX_TOKENS} tokens per request, median of {RUNS} runs, 1 llama.cpp thread")
    print("| mode | llama-cpp-python direct tok/s | through ParrotRouter tok/s | ratio |")
    print("|---|---:|---:|---:|")
    for mode in ("non-stream", "stream"):
        print(f"| {mode} | {d[mode]:.1f} | {g[mode]:.1f} | {g[mode] / d[mode]:.0%} |")


if __name__ == "__main__":
    main()
