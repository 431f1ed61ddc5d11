"""Capture what the real clients send: each runs once against the recording server
(tests/clients/recorder.py) and its requests are written to tests/data/clients/<client>_<case>.json.

    python -m tests.clients.capture [CASE ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.clients import launch
from tests.clients.gateway import CODEX_CATALOG_MODEL, CODEX_LITE_MODEL
from tests.clients.recorder import Recorder

OUT = Path(__file__).resolve().parent.parent / "data" / "clients"
KEY = "pr-capture-key"


def _claude(rec: Recorder, root: Path) -> Any:
    return launch.claude(root, rec.url, KEY, "claude-sonnet-4-6", small_model="claude-haiku-4-5")


def _codex(model: str) -> Callable[[Recorder, Path], Any]:
    def run(rec: Recorder, root: Path) -> Any:
        return launch.codex(root, rec.url + "/v1", KEY, model)
    return run


def _ai_sdk(provider: str, call: str, tool: bool) -> Callable[[Recorder, Path], Any]:
    def run(rec: Recorder, root: Path) -> Any:
        model = "claude-sonnet-4-5" if provider == "anthropic" else "gpt-4o-mini"
        return launch.ai_sdk({"provider": provider, "baseURL": rec.url + "/v1", "apiKey": KEY, "model": model,
                              "call": call, "tool": tool})
    return run


def _langchain(provider: str) -> Callable[[Recorder, Path], Any]:
    def run(rec: Recorder, root: Path) -> Any:
        from langchain_anthropic import ChatAnthropic
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        if provider == "anthropic":
            chat: Any = ChatAnthropic(model_name="claude-sonnet-4-5", base_url=rec.url, api_key=SecretStr(KEY),
                                      max_retries=0, timeout=30, stop=None)
        else:
            chat = ChatOpenAI(model="gpt-4o-mini", base_url=rec.url + "/v1", api_key=SecretStr(KEY),
                              use_responses_api=True, max_retries=0)
        weather = {"name": "get_weather", "description": "Current weather in a city", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
        return [chat.invoke("Hi").content, "".join(str(c.content) for c in chat.stream("Hi")),
                chat.bind_tools([weather]).invoke("Weather in Paris?").tool_calls]
    return run


CASES: dict[str, Callable[[Recorder, Path], Any]] = {
    "claude_code_tool_round_trip": _claude,
    "codex_tool_round_trip": _codex("gpt-5-codex"),  # a model id Codex does not know
    "codex_catalog_model_tool_round_trip": _codex(CODEX_CATALOG_MODEL),
    # Codex's newest ids: tools in an `additional_tools` input item (no tool is called: not one the recorder knows)
    "codex_responses_lite": _codex(CODEX_LITE_MODEL),
    "ai_sdk_openai_generate": _ai_sdk("openai", "generate", False),
    "ai_sdk_openai_stream_tool": _ai_sdk("openai", "stream", True),
    "ai_sdk_anthropic_generate_tool": _ai_sdk("anthropic", "generate", True),
    "ai_sdk_anthropic_stream": _ai_sdk("anthropic", "stream", False),
    "langchain_anthropic_invoke_stream_tools": _langchain("anthropic"),
    "langchain_openai_responses_invoke_stream_tools": _langchain("openai"),
}


def main(out: Path = OUT, only: list[str] | None = None) -> None:
    launch.install()
    out.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        if only and name not in only:
            continue
        rec = Recorder().start()
        try:
            with tempfile.TemporaryDirectory() as root:
                result = case(rec, Path(root))
        finally:
            rec.stop()
        (out / f"{name}.json").write_text(json.dumps(rec.log, indent=1, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rec.log)} requests {[r['method'] + ' ' + r['path'] for r in rec.log]}")
        print(f"  result: {str(result)[:600]}")


if __name__ == "__main__":
    main(only=sys.argv[1:] or None)
