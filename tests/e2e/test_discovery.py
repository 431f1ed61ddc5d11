"""Zero-config discovery end to end: the real server started with one environment variable naming a
fake vLLM or Ollama (tests/fakes/model_servers.py, over loopback), its models listed in /v1/models
with their context lengths and served to the openai SDK; refreshed while running; a server that is
down at start-up does not hold the gateway back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Gateway, free_port
from tests.e2e.test_lifecycle import run_cli
from tests.fakes import model_servers
from tests.fakes.model_servers import ModelServer

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture
def servers() -> Iterator[list[ModelServer]]:
    started: list[ModelServer] = []
    yield started
    for server in started:
        server.stop()


def listed(gw: Gateway) -> dict[str, dict[str, Any]]:
    with gw.http() as http:
        got = http.get("/v1/models")
    assert got.status_code == 200, got.text
    return {m["id"]: m for m in got.json()["data"]}


def wait_for(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_openai_base_url_at_a_vllm_serves_its_models(make_gateway: Any, servers: list[ModelServer]) -> None:
    vllm = model_servers.vllm().start()
    servers.append(vllm)
    gw: Gateway = make_gateway(None, env={"OPENAI_BASE_URL": vllm.base_url, "OPENAI_API_KEY": "sk-anything"}).start()
    models = listed(gw)
    assert models[LLAMA]["context_length"] == 131072
    assert models[LLAMA]["provider"]["id"] == "openai" and "/v1/completions" in models[LLAMA]["endpoints"]
    assert models["BAAI/bge-m3-embed"]["capabilities"]["embeddings"]
    client = gw.client()
    assert LLAMA in {m.id for m in client.models.list()}
    assert client.models.retrieve(LLAMA).id == LLAMA
    answer = client.chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content and answer.model == LLAMA
    assert vllm.last()["model"] == LLAMA and vllm.headers[-1]["Authorization"] == "Bearer sk-anything"
    assert "sk-anything" not in gw.output()


def test_ollama_host_serves_its_models(make_gateway: Any, servers: list[ModelServer]) -> None:
    ollama = model_servers.ollama().start()
    servers.append(ollama)
    gw: Gateway = make_gateway(None, env={"OLLAMA_HOST": f"127.0.0.1:{ollama.port}"}).start()
    models = listed(gw)
    assert models["llama3.2:latest"]["context_length"] == 131072
    assert models["llama3.2:latest"]["aliases"] == ["llama3.2"]
    pricing = models["llama3.2:latest"]["pricing"]
    assert pricing["prompt"] == 0 and pricing["completion"] == 0  # a local server's models are free
    assert models["nomic-embed-text:latest"]["capabilities"]["embeddings"]
    assert models["llava:7b"]["capabilities"]["vision"]
    answer = gw.client().chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    assert ollama.last()["model"] == "llama3.2:latest"  # the alias resolved to Ollama's own id


def test_refresh_adds_and_removes_models(make_gateway: Any, servers: list[ModelServer]) -> None:
    vllm = model_servers.vllm().start()
    servers.append(vllm)
    gw: Gateway = make_gateway(None, env={"VLLM_BASE_URL": vllm.url, "PARROTROUTER_DISCOVERY_INTERVAL": "5"}).start()
    assert LLAMA in listed(gw)
    vllm.listings["/v1/models"]["data"].append({"id": "Qwen/Qwen3-8B", "object": "model", "max_model_len": 40960})
    wait_for(lambda: "Qwen/Qwen3-8B" in listed(gw))
    assert listed(gw)["Qwen/Qwen3-8B"]["context_length"] == 40960
    answer = gw.client().chat.completions.create(model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content
    vllm.listings["/v1/models"]["data"] = [m for m in vllm.listings["/v1/models"]["data"] if m["id"] != LLAMA]
    wait_for(lambda: LLAMA not in listed(gw))
    with gw.http() as http:
        gone = http.post("/v1/chat/completions", json={"model": LLAMA, "messages": [{"role": "user", "content": "x"}]})
    assert gone.status_code in (400, 404) and "not available" in gone.text


def test_a_server_down_at_start_does_not_hold_the_gateway(make_gateway: Any, servers: list[ModelServer]) -> None:
    vllm = model_servers.vllm().start()
    servers.append(vllm)
    started = time.monotonic()
    gw: Gateway = make_gateway(None, env={"VLLM_BASE_URL": vllm.url, "OLLAMA_HOST": f"127.0.0.1:{free_port()}",
                                          "PARROTROUTER_DISCOVERY_TIMEOUT": "2"}).start()
    assert time.monotonic() - started < 15
    assert LLAMA in listed(gw)
    answer = gw.client().chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    assert "provider ollama: listing its models failed: connection refused" in gw.output()


def test_lm_studio_and_llamacpp_server_together(make_gateway: Any, servers: list[ModelServer]) -> None:
    lmstudio, llamacpp = model_servers.lmstudio().start(), model_servers.llamacpp().start()
    servers += [lmstudio, llamacpp]
    gw: Gateway = make_gateway(None, env={"LMSTUDIO_BASE_URL": lmstudio.url,
                                          "LLAMACPP_SERVER_URL": llamacpp.base_url}).start()
    models = listed(gw)
    assert models["qwen2-vl-7b-instruct"]["capabilities"]["vision"]
    assert models["qwen2-vl-7b-instruct"]["provider"]["id"] == "lmstudio"
    assert models["text-embedding-nomic-embed-text-v1.5"]["capabilities"]["embeddings"]
    gguf = "../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert models[gguf]["context_length"] == 8192 and models[gguf]["provider"]["id"] == "llamacpp-server"
    answer = gw.client().completions.create(model=gguf, prompt="Once upon")
    assert answer.choices[0].text


def test_models_command_lists_discovered_models(servers: list[ModelServer], tmp_path: Any) -> None:
    ollama = model_servers.ollama().start()
    servers.append(ollama)
    out = run_cli("models", env={"PARROTROUTER_HOME": str(tmp_path), "PARROTROUTER_LOCAL_MODELS": "false",
                                 "OLLAMA_HOST": ollama.url, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("llama3.2:latest "))
    assert line.split()[1] == "ollama" and "local" in line.split()  # a local server's model: free


def test_hostile_upstreams_never_break_the_gateway(make_gateway: Any, servers: list[ModelServer]) -> None:
    import orjson

    junk: list[Any] = [{"id": "bad\x00id"}, {"id": "x" * 300}, {"id": 5}, None, "junk", {"id": "auto"},
                       {"id": "ok-model", "max_model_len": -1}]
    many = ModelServer({"/v1/models": {"data": [*junk, *({"id": f"m-{i}"} for i in range(10_000))]}}).start()
    huge = ModelServer({"/v1/models": b'{"data": [' + b'{"id": "y"},' * 800_000 + b'{"id": "z"}]}'}).start()
    servers += [many, huge]
    assert len(orjson.dumps(huge.listings["/v1/models"].decode())) > 8 * 2**20
    gw: Gateway = make_gateway(None, env={"VLLM_BASE_URL": many.base_url, "OPENAI_BASE_URL": huge.base_url,
                                          "OPENAI_API_KEY": "sk-x"}).start()
    models = listed(gw)
    discovered = [m for m in models if m.startswith("m-")]
    # The first 5,000 valid ids: `auto` (never served as a model: the gateway's own name), ok-model, m-0..m-4997
    assert len(discovered) == 4_998 and "m-4997" in models and "m-4998" not in models and "auto" not in models
    assert models["ok-model"]["context_length"] is None and "y" not in models
    output = gw.output()
    assert "provider vllm lists more than 5000 models" in output
    assert "provider openai: listing its models failed: answer larger than" in output
    answer = gw.client().chat.completions.create(model="m-7", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
