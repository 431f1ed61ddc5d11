"""The embedded SmolLM2 model, for real, through the gateway, with the official SDK as client."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from parrotrouter.config.loader import embedded_model_path
from tests.conftest import Gateway

pytestmark = pytest.mark.skipif(embedded_model_path() is None and not os.environ.get("CI"),
                                reason="the local extra is not installed")

MODEL = "smollm2-135m-instruct"
ASK = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def local_gw(tmp_path_factory: pytest.TempPathFactory) -> Any:
    gw = Gateway(tmp_path_factory.mktemp("local"), None, env={"PARROTROUTER_LOCAL_MODELS": "true"}).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = llama_cpp.Llama(model_path=embedded_model_path(), vocab_only=True, verbose=False)
    fmt = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
                              bos_token="<|im_start|>")

    def count(messages: list[dict[str, str]]) -> int:
        prompt = fmt(messages=messages)
        return len(llm.tokenize(prompt.prompt.encode(), add_bos=not prompt.added_special, special=True))

    return count


def test_zero_config_lists_the_local_model(local_gw: Gateway) -> None:
    model = local_gw.client().models.retrieve(MODEL)
    extra = model.model_extra or {}
    assert extra["provider"]["id"] == "local"
    assert extra["pricing"]["prompt"] == 0 and extra["pricing"]["completion"] == 0
    assert extra["capabilities"]["function_calling"] is False
    assert extra["capabilities"]["completion"] is True
    assert extra["context_length"] == 8192 and extra["status"]["active"] is True


def test_chat_answers_with_exact_usage(local_gw: Gateway, tokenizer: Any) -> None:
    resp = local_gw.client().chat.completions.create(model=MODEL, messages=ASK, max_tokens=12, temperature=0.7)
    assert resp.model == MODEL
    assert resp.choices[0].message.content
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == tokenizer(ASK)
    if resp.choices[0].finish_reason == "length":
        assert resp.usage.completion_tokens == 12
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_auto_resolves_to_the_local_model(local_gw: Gateway) -> None:
    resp = local_gw.client().chat.completions.create(model="auto", messages=ASK, max_tokens=5)
    assert resp.model == MODEL


def test_stream_with_usage_matches_non_stream(local_gw: Gateway) -> None:
    client = local_gw.client()
    kwargs: dict[str, Any] = {"model": MODEL, "messages": ASK, "max_tokens": 20, "temperature": 0.0, "seed": 7}
    plain = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None and plain.usage is not None
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()


def test_stop_sequences(local_gw: Gateway) -> None:
    client = local_gw.client()
    free = client.completions.create(model=MODEL, prompt="1, 2, 3, 4, 5, 6,", max_tokens=12, temperature=0)
    assert " 8" in free.choices[0].text  # greedy decoding counts on
    stopped = client.completions.create(model=MODEL, prompt="1, 2, 3, 4, 5, 6,", max_tokens=12, temperature=0,
                                        stop=[" 8"])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == free.choices[0].text.split(" 8")[0]
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Count from 1 to 10."}],
                                          max_tokens=40, temperature=0, stop=["5"])
    assert "5" not in (chat.choices[0].message.content or "")


PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def test_json_schema_output_validates(local_gw: Gateway) -> None:
    resp = local_gw.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Invent a person."}], max_tokens=300, temperature=0.3,
        seed=11, response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}})
    assert resp.choices[0].finish_reason == "stop", resp.choices[0].message.content
    jsonschema.validate(json.loads(resp.choices[0].message.content or ""), PERSON)


def test_json_object_mode(local_gw: Gateway) -> None:
    """The grammar holds the model to one JSON object: complete when it stops, a prefix of one
    when it is cut for length (greedy decoding: the same answer on every run)."""
    client = local_gw.client()
    ask = [{"role": "user", "content": 'Reply with the JSON object {"name": "Tom", "age": 3} and nothing else.'}]
    resp = client.chat.completions.create(model=MODEL, messages=ask, max_tokens=100,
                                          response_format={"type": "json_object"}, temperature=0)
    assert resp.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(resp.choices[0].message.content or ""), dict)
    cut = client.chat.completions.create(model=MODEL, messages=ask, max_tokens=3,
                                         response_format={"type": "json_object"}, temperature=0)
    assert cut.choices[0].finish_reason == "length"
    assert (cut.choices[0].message.content or "").lstrip().startswith("{")


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_named_tool_choice_produces_a_tool_call(local_gw: Gateway) -> None:
    client = local_gw.client()
    kwargs: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}],
                              "tools": [WEATHER], "max_tokens": 120, "temperature": 0,
                              "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    resp = client.chat.completions.create(**kwargs)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    with client.chat.completions.stream(**kwargs) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls[0]
    jsonschema.validate(json.loads(streamed.function.arguments), WEATHER["function"]["parameters"])


def test_auto_tool_choice_is_refused_clearly(local_gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        local_gw.client().chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER])
    assert "tool_choice" in info.value.message and info.value.param == "tool_choice"


def test_context_overflow(local_gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        local_gw.client().chat.completions.create(model=MODEL, messages=[
            {"role": "user", "content": "hello " * 9000}], max_tokens=5)
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        local_gw.client().chat.completions.create(model=MODEL, messages=ASK, max_tokens=9000)
    assert info.value.code == "context_length_exceeded"


def test_completions_n_best_of_logprobs(local_gw: Gateway) -> None:
    client = local_gw.client()
    resp = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=6, n=2, best_of=3,
                                     logprobs=3)
    assert [c.index for c in resp.choices] == [0, 1]
    means = []
    for choice in resp.choices:
        lp = choice.logprobs
        assert lp is not None and len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs)
        assert all(len(t) == 3 for t in lp.top_logprobs)
        assert "".join(lp.tokens) == choice.text
        means.append(sum(lp.token_logprobs) / len(lp.token_logprobs))
    assert means[0] >= means[1]
    assert resp.usage is not None and resp.usage.completion_tokens <= 18
    echo = client.completions.create(model=MODEL, prompt="Hello", max_tokens=3, echo=True)
    assert echo.choices[0].text.startswith("Hello")
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x", n=3, best_of=2)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt="x", best_of=2, stream=True)
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt="x", suffix="y")
    assert info.value.param == "suffix"


def test_chat_logprobs(local_gw: Gateway) -> None:
    resp = local_gw.client().chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, logprobs=True,
                                                     top_logprobs=2)
    content = resp.choices[0].logprobs.content
    assert content and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in content)


@pytest.fixture
def small_queue_gw(make_gateway: Any) -> Gateway:
    config = {"env_providers": False, "server": {"local_models": False},
              "providers": [{"name": "tiny", "type": "llamacpp", "path": embedded_model_path(), "queue_size": 1,
                             "context_length": 2048}],
              "models": [{"id": "tiny-chat", "deployments": [{"provider": "tiny"}]}]}
    return make_gateway(config).start()


def test_queue_overflow_and_disconnect(small_queue_gw: Gateway) -> None:
    gw = small_queue_gw
    long_body = {"model": "tiny-chat", "messages": ASK, "max_tokens": 1500, "temperature": 1.0, "stream": True,
                 "stop": []}
    started = threading.Event()
    release = threading.Event()

    def stream_then_hang_up() -> None:
        with gw.http() as http, http.stream("POST", "/v1/chat/completions", json=long_body) as resp:
            for _ in resp.iter_lines():
                started.set()
                release.wait(10)
                break  # leaving the block closes the connection mid-generation

    t = threading.Thread(target=stream_then_hang_up)
    t.start()
    assert started.wait(30)
    with gw.http() as http:
        busy = http.post("/v1/chat/completions", json={"model": "tiny-chat", "messages": ASK, "max_tokens": 3})
    assert busy.status_code == 503
    assert busy.json()["error"]["code"] == "model_overloaded" and busy.headers["retry-after"]
    release.set()
    t.join()
    # The disconnect stopped the 1500-token generation: the model is free again at once.
    began = time.time()
    with gw.http() as http:
        for _ in range(50):
            ok = http.post("/v1/chat/completions", json={"model": "tiny-chat", "messages": ASK, "max_tokens": 3})
            if ok.status_code == 200:
                break
            time.sleep(0.1)
    assert ok.status_code == 200
    assert time.time() - began < 8


def _maps_model(pid: int, path: str) -> bool:
    try:
        return path in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _tree(pid: int) -> list[int]:
    out = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out += _tree(int(child))
    return out


def test_workers_share_one_model_host(make_gateway: Any) -> None:
    gw: Gateway = make_gateway(None, env={"PARROTROUTER_LOCAL_MODELS": "true"}, args=["--workers", "2"]).start()
    client = gw.client()
    for _ in range(4):
        resp = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
        assert resp.model == MODEL and resp.usage is not None and resp.usage.prompt_tokens > 0
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, stream=True))
    assert chunks
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi " * 9000}])
    assert info.value.code == "context_length_exceeded"
    assert gw.proc is not None
    path = embedded_model_path()
    assert path is not None
    loaded = [p for p in _tree(gw.proc.pid) if _maps_model(p, path)]
    assert len(loaded) == 1, f"model mapped in {loaded}"
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/ready").status_code == 200
