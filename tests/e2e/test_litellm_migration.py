"""A LiteLLM proxy config, converted by `parrotrouter config import-litellm`, served by the real
gateway: the model by its LiteLLM name and alias, both deployments, the configured price, and
the master key read through the file's `{$env: ...}` reference."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import yaml

from tests.conftest import MASTER_KEY, REPO, Gateway
from tests.fakes.openai_upstream import FakeOpenAI


def test_a_converted_litellm_config_serves_its_models(fake_upstream: FakeOpenAI, tmp_path: Path,
                                                      make_gateway: Callable[..., Gateway]) -> None:
    litellm = {
        "model_list": [
            {"model_name": "team-model",
             "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": fake_upstream.base_url,
                                "api_key": "os.environ/FAKE_UPSTREAM_KEY", "rpm": 30,
                                "input_cost_per_token": 0.00000015, "output_cost_per_token": 0.0000006}},
            {"model_name": "team-model",
             "litellm_params": {"model": "hosted_vllm/gpt-4o-mini", "api_base": fake_upstream.base_url,
                                "rpm": 10, "input_cost_per_token": 0.00000015, "output_cost_per_token": 0.0000006}},
        ],
        "router_settings": {"model_group_alias": {"gpt-4": "team-model"}, "num_retries": 2},
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
        "litellm_settings": {"drop_params": True},
    }
    source, converted = tmp_path / "litellm.yaml", tmp_path / "parrotrouter.yaml"
    source.write_text(yaml.safe_dump(litellm))
    done = subprocess.run([sys.executable, "-m", "parrotrouter", "config", "import-litellm", str(source),
                           "-o", str(converted)], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "rate limit is not enforced" in done.stderr

    gw = make_gateway(None, env={"FAKE_UPSTREAM_KEY": "sk-upstream-secret", "LITELLM_MASTER_KEY": MASTER_KEY},
                      args=["--config", str(converted)])
    del gw.env["PARROTROUTER_MASTER_KEY"]  # the master key comes from the converted file's reference
    gw.start()
    with gw.http() as http:
        listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert set(listed) == {"team-model"}
    client = gw.client()
    for name in ("team-model", "gpt-4"):
        answer = client.chat.completions.with_raw_response.create(
            model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        assert answer.http_response.status_code == 200
        assert answer.parse().choices[0].message.content
    # Each deployment answers when pinned by provider/model.
    for provider in ("openai-compatible", "vllm"):
        pinned = client.chat.completions.create(model=f"{provider}/team-model",
                                                messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        assert pinned.choices[0].message.content
    # LiteLLM's USD per token, as /v1/models shows it (per 1k tokens).
    pricing = listed["team-model"]["pricing"]
    per_million = Decimal(1_000) if pricing["unit"] == "1k_tokens" else Decimal(1)
    assert Decimal(str(pricing["prompt"])) * per_million == Decimal("0.15")
    assert Decimal(str(pricing["completion"])) * per_million == Decimal("0.6")
