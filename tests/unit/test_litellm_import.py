"""`parrotrouter config import-litellm`'s converter (config/litellm_import.py) on LiteLLM's own
documented example configs (tests/data/litellm/, each with its source), on every mapping rule, and
on hostile input. Every converted example must pass our own validation (`check_config_file` and the
`server:` settings) with the variables it references set, and hold none of the input's secrets.

PARROTROUTER_UPDATE_GOLDEN=1 rewrites tests/data/litellm/expected/ (review the diff)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from parrotrouter.config import check_config_file
from parrotrouter.config.litellm_import import MAX_BYTES, MAX_VALUES, Conversion, convert, import_litellm_file
from parrotrouter.errors import ConfigError
from parrotrouter.settings import load_settings

DATA = Path(__file__).resolve().parents[1] / "data" / "litellm"
EXPECTED = DATA / "expected"
EXAMPLES = sorted(p for p in DATA.glob("*.yaml") if p.name != "example_proxy_config_broken.yaml")
# Values written inline in the examples: the output must never hold them.
INLINE_SECRETS = ["sk-1234", "sk-123", "eyJ0eXAiOiJ", "73g", "9kj", "sk-uj6F", "sk-Imn", "eYVX71",
                  "your-api-key-1", "your-api-key-2", "my-fake-key", "<my-openai-key>", "<your redis password>"]


def _env_refs(value: Any) -> set[str]:
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            return {value["$env"]}
        return set().union(*(_env_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_env_refs(v) for v in value)) if value else set()
    return set()


def _validate(conversion: Conversion, tmp_path: Path) -> None:
    """The output as `serve` reads it: the file, the catalog it builds, its server settings."""
    path = tmp_path / "parrotrouter.yaml"
    path.write_text(conversion.render(), encoding="utf-8")
    env = {name: "test-secret-value" for name in _env_refs(conversion.config)}
    env |= {k: "postgresql://parrot@127.0.0.1/parrot" for k in env if "DATABASE" in k}
    env |= {k: "redis://127.0.0.1:6379/0" for k in env if "REDIS" in k}
    resolved = check_config_file(str(path), env)
    for model in conversion.config["models"]:
        assert resolved.catalog.resolve(model["id"]).model.id == model["id"]
        for alias in model.get("aliases", []):
            assert resolved.catalog.resolve(alias).model.id == model["id"]
    load_settings(env=env, file=resolved.server)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_documented_examples_convert_to_a_valid_config(example: Path, tmp_path: Path) -> None:
    conversion = import_litellm_file(str(example))
    text = conversion.render()
    golden = EXPECTED / example.name
    if os.environ.get("PARROTROUTER_UPDATE_GOLDEN"):
        EXPECTED.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"{example.name}: output differs from {golden}"
    _validate(conversion, tmp_path)
    for secret in INLINE_SECRETS:
        assert secret not in text, f"{example.name}: the inline secret {secret!r} reached the output"
    # The report heads the file as comments, so a user reading the file sees it.
    for line in conversion.report():
        assert f"# {line}" in text


def test_a_repository_config_that_is_not_yaml_is_refused_with_its_line() -> None:
    with pytest.raises(ConfigError) as err:
        import_litellm_file(str(DATA / "example_proxy_config_broken.yaml"))
    assert "line 36, column 3: invalid YAML" in err.value.render()


def _convert(text: str) -> Conversion:
    return convert(yaml.safe_load(text), "test.yaml")


def _models(conversion: Conversion) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in conversion.config["models"]}


def _providers(conversion: Conversion) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in conversion.config["providers"]}


def _messages(conversion: Conversion, level: str | None = None) -> list[str]:
    return [str(f) for f in conversion.findings if level is None or f.level == level]


def test_same_model_name_is_one_model_with_a_deployment_per_upstream() -> None:
    conv = _convert("""
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: os.environ/OPENAI_API_KEY, weight: 3}
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o-prod, api_base: https://eu.openai.azure.com/, api_key: os.environ/AZ_KEY,
                     api_version: "2024-10-21", weight: 1}
  - model_name: gpt-4o-mini
    litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY}
""")
    providers = _providers(conv)
    assert providers["openai"] == {"name": "openai", "type": "openai", "api_key": {"$env": "OPENAI_API_KEY"}}
    assert providers["azure"] == {"name": "azure", "type": "azure", "base_url": "https://eu.openai.azure.com",
                                  "api_key": {"$env": "AZ_KEY"}, "options": {"api_version": "2024-10-21"}}
    models = _models(conv)
    assert models["gpt-4o"]["deployments"] == [{"provider": "openai", "model": "gpt-4o", "weight": 3},
                                               {"provider": "azure", "model": "gpt-4o-prod"}]
    assert models["gpt-4o-mini"]["deployments"] == [{"provider": "openai", "model": "gpt-4o-mini"}]
    assert conv.config["env_providers"] is False


@pytest.mark.parametrize(("model", "provider", "ptype", "upstream"), [
    ("anthropic/claude-3-5-sonnet-20241022", "anthropic", "anthropic", "claude-3-5-sonnet-20241022"),
    ("gemini/gemini-1.5-pro", "gemini", "gemini", "gemini-1.5-pro"),
    ("groq/llama3-8b-8192", "groq", "openai", "llama3-8b-8192"),
    ("mistral/mistral-large-latest", "mistral", "openai", "mistral-large-latest"),
    ("deepseek/deepseek-chat", "deepseek", "openai", "deepseek-chat"),
    ("together_ai/meta-llama/Llama-3-70b-chat-hf", "together", "openai", "meta-llama/Llama-3-70b-chat-hf"),
    ("fireworks_ai/accounts/fireworks/models/llama-v3-70b-instruct", "fireworks", "openai",
     "accounts/fireworks/models/llama-v3-70b-instruct"),
    ("xai/grok-3", "xai", "openai", "grok-3"),
    ("openrouter/anthropic/claude-3-opus", "openrouter", "openai", "anthropic/claude-3-opus"),
    ("cohere/command-r-plus", "cohere", "cohere", "command-r-plus"),
    ("bedrock/converse/anthropic.claude-3-sonnet-20240229-v1:0", "bedrock", "bedrock",
     "anthropic.claude-3-sonnet-20240229-v1:0"),
    ("claude-3-opus-20240229", "anthropic", "anthropic", "claude-3-opus-20240229"),
    ("gpt-4o", "openai", "openai", "gpt-4o"),
])
def test_provider_prefixes_map_to_our_types_and_preset_names(model: str, provider: str, ptype: str,
                                                            upstream: str, tmp_path: Path) -> None:
    conv = _convert(f"model_list: [{{model_name: m, litellm_params: {{model: '{model}'}}}}]")
    assert _providers(conv)[provider]["type"] == ptype
    assert "base_url" not in _providers(conv)[provider]  # the preset's
    assert _models(conv)["m"]["deployments"] == [{"provider": provider, "model": upstream}]
    _validate(conv, tmp_path)


def test_local_servers_get_their_openai_compatible_urls(tmp_path: Path) -> None:
    conv = _convert("""
model_list:
  - {model_name: llama, litellm_params: {model: ollama_chat/llama3.1, api_base: "http://ollama:11434"}}
  - {model_name: qwen, litellm_params: {model: hosted_vllm/Qwen/Qwen2.5-7B, api_base: "http://gpu:8000/v1/"}}
  - {model_name: local, litellm_params: {model: ollama/phi}}
  - {model_name: opt, litellm_params: {model: openai/facebook/opt-125m, api_base: "http://0.0.0.0:4000/v1"}}
""")
    providers = _providers(conv)
    assert providers["ollama"]["base_url"] == "http://ollama:11434/v1"
    assert providers["ollama-2"]["base_url"] == "http://localhost:11434/v1"
    assert providers["vllm"] == {"name": "vllm", "type": "openai", "base_url": "http://gpu:8000/v1"}
    assert providers["openai-compatible"]["base_url"] == "http://0.0.0.0:4000/v1"
    assert _models(conv)["qwen"]["deployments"] == [{"provider": "vllm", "model": "Qwen/Qwen2.5-7B"}]
    _validate(conv, tmp_path)


def test_unsupported_providers_are_left_out_and_reported() -> None:
    conv = _convert("""
model_list:
  - model_name: gemini-vision
    litellm_params: {model: vertex_ai/gemini-1.5-pro, vertex_project: p, vertex_location: us-central1}
  - model_name: gemini-vision
    litellm_params: {model: gemini/gemini-1.5-pro, api_key: os.environ/GEMINI_API_KEY}
  - model_name: hf
    litellm_params: {model: huggingface/bigcode/starcoder}
""")
    assert list(_models(conv)) == ["gemini-vision"]
    assert _models(conv)["gemini-vision"]["deployments"] == [{"provider": "gemini", "model": "gemini-1.5-pro"}]
    unmapped = " ".join(_messages(conv, "unmapped"))
    assert "model_list[0].litellm_params.model: provider 'vertex_ai' is not supported (for Gemini models use the " \
           "gemini/ prefix" in unmapped
    assert "model_list[2].litellm_params.model: provider 'huggingface' is not supported" in unmapped


def test_prices_per_token_become_prices_per_million_tokens(tmp_path: Path) -> None:
    conv = _convert("""
model_list:
  - model_name: priced
    litellm_params: {model: openai/gpt-4o, input_cost_per_token: 0.0000025, output_cost_per_token: 0.00001,
                     cache_read_input_token_cost: 0.00000125}
  - model_name: two-prices
    litellm_params: {model: openai/my-model, api_base: "http://a:1/v1", input_cost_per_token: 0.000001,
                     output_cost_per_token: 0.000002}
  - model_name: two-prices
    litellm_params: {model: openai/my-model, api_base: "http://b:1/v1"}
    model_info: {input_cost_per_token: 0.000003, output_cost_per_token: 0.000004}
  - model_name: embed
    litellm_params: {model: openai/text-embedding-3-small}
    model_info: {mode: embedding, input_cost_per_token: 0.00000002}
""")
    models = _models(conv)
    assert models["priced"]["pricing"] == {"prompt": 2.5, "completion": 10, "cached_prompt": 1.25,
                                           "unit": "1m_tokens"}
    assert [d["pricing"] for d in models["two-prices"]["deployments"]] == [
        {"prompt": 1, "completion": 2, "unit": "1m_tokens"}, {"prompt": 3, "completion": 4, "unit": "1m_tokens"}]
    assert models["embed"]["pricing"] == {"prompt": 0.02, "completion": 0, "unit": "1m_tokens"}
    assert models["embed"]["capabilities"] == {"chat": False, "embeddings": True, "function_calling": False,
                                               "json_mode": False}
    _validate(conv, tmp_path)


def test_model_info_sets_context_output_cap_and_capabilities() -> None:
    conv = _convert("""
model_list:
  - model_name: instruct
    litellm_params: {model: text-completion-openai/gpt-3.5-turbo-instruct}
  - model_name: big
    litellm_params: {model: openai/gpt-4o}
    model_info: {max_input_tokens: 128000, max_output_tokens: 16384, supports_vision: true,
                 supports_function_calling: false}
""")
    models = _models(conv)
    assert models["instruct"]["capabilities"] == {"chat": False, "completion": True, "function_calling": False,
                                                  "json_mode": False}
    assert models["big"]["context_length"] == 128000
    assert models["big"]["max_output_tokens"] == 16384
    assert models["big"]["capabilities"] == {"vision": True, "function_calling": False}


def test_rpm_weights_deployments_as_simple_shuffle_does() -> None:
    conv = _convert("""
model_list:
  - {model_name: m, litellm_params: {model: openai/m, api_base: "http://a:1/v1", rpm: 60}}
  - {model_name: m, litellm_params: {model: openai/m, api_base: "http://b:1/v1", rpm: 600}}
""")
    assert [d.get("weight") for d in _models(conv)["m"]["deployments"]] == [60, 600]
    assert any("rate limit is not enforced" in m for m in _messages(conv, "unmapped"))


def test_order_becomes_the_priority_strategy() -> None:
    conv = _convert("""
model_list:
  - {model_name: m, litellm_params: {model: openai/m, api_base: "http://b:1/v1", order: 2}}
  - {model_name: m, litellm_params: {model: openai/m, api_base: "http://a:1/v1", order: 1}}
""")
    model = _models(conv)["m"]
    assert model["strategy"] == "priority"
    assert [d["provider"] for d in model["deployments"]] == ["openai-compatible-2", "openai-compatible"]


@pytest.mark.parametrize(("strategy", "ours"), [("least-busy", "least-busy"), ("latency-based-routing", "latency"),
                                                ("cost-based-routing", "cost"), ("simple-shuffle", None),
                                                ("usage-based-routing-v2", None)])
def test_routing_strategies(strategy: str, ours: str | None) -> None:
    conv = _convert(f"""
model_list:
  - {{model_name: m, litellm_params: {{model: groq/llama3-8b-8192}}}}
  - {{model_name: m, litellm_params: {{model: together_ai/meta-llama/Llama-3-8b-chat-hf}}}}
  - {{model_name: single, litellm_params: {{model: groq/llama3-70b-8192}}}}
router_settings: {{routing_strategy: {strategy}}}
""")
    assert _models(conv)["m"].get("strategy") == ours
    assert "strategy" not in _models(conv)["single"]
    if strategy.startswith("usage"):
        assert any("routing_strategy: 'usage-based-routing-v2' has no equivalent" in m
                   for m in _messages(conv, "unmapped"))


def test_router_settings_become_server_settings(tmp_path: Path) -> None:
    conv = _convert("""
model_list: [{model_name: m, litellm_params: {model: openai/gpt-4o}}]
router_settings:
  num_retries: 2
  timeout: 45.5
  allowed_fails: 4
  cooldown_time: 20
  fallbacks: [{m: [other]}]
  model_group_alias: {gpt-4: m, hidden-one: {model: m, hidden: true}, nowhere: missing}
  redis_host: redis.internal
  redis_port: 6380
litellm_settings: {json_logs: true, cache: true, callbacks: [prometheus]}
""")
    assert conv.config["server"] == {"max_attempts": 3, "request_timeout": 45.5, "breaker_failure_threshold": 4,
                                     "breaker_cooldown": 20, "redis_url": "redis://redis.internal:6380",
                                     "log_format": "json"}
    assert _models(conv)["m"]["aliases"] == ["gpt-4", "hidden-one"]
    unmapped = " ".join(_messages(conv, "unmapped"))
    for where in ("router_settings.fallbacks", "router_settings.model_group_alias.nowhere",
                  "litellm_settings.cache", "litellm_settings.callbacks"):
        assert where in unmapped
    _validate(conv, tmp_path)


def test_secrets_become_references_and_inline_ones_are_never_copied(tmp_path: Path) -> None:
    conv = _convert("""
model_list:
  - {model_name: a, litellm_params: {model: openai/gpt-4o, api_key: sk-live-abcdef}}
  - {model_name: b, litellm_params: {model: anthropic/claude-3-5-haiku-latest, api_key: os.environ/MY_ANTHROPIC}}
  - {model_name: c, litellm_params: {model: groq/llama3-8b-8192, api_key: "${GROQ_KEY}"}}
  - {model_name: d, litellm_params: {model: openai/gpt-4o-mini, api_key: sk-live-abcdef}}
router_settings: {redis_url: "redis://:hunter2@redis:6379"}
general_settings: {master_key: sk-master-secret, database_url: "postgresql://u:pw-secret@db/litellm"}
""")
    text = conv.render()
    for secret in ("sk-live-abcdef", "hunter2", "sk-master-secret", "pw-secret"):
        assert secret not in text
        assert secret not in "\n".join(conv.report())
    providers = _providers(conv)
    assert providers["openai"]["api_key"] == {"$env": "OPENAI_API_KEY"}
    assert len(providers) == 3  # one inline key, one provider: a and d share it
    assert providers["anthropic"]["api_key"] == {"$env": "MY_ANTHROPIC"}
    assert providers["groq"]["api_key"] == {"$env": "GROQ_KEY"}
    assert conv.config["server"] == {"redis_url": {"$env": "REDIS_URL"}, "master_key": {"$env": "LITELLM_MASTER_KEY"},
                                     "database_url": {"$env": "DATABASE_URL"}}
    actions = " ".join(_messages(conv, "action"))
    for variable in ("OPENAI_API_KEY", "REDIS_URL", "LITELLM_MASTER_KEY", "DATABASE_URL"):
        assert f"set {variable}" in actions
    _validate(conv, tmp_path)


def test_master_key_and_database_by_reference(tmp_path: Path) -> None:
    conv = _convert("""
model_list: [{model_name: m, litellm_params: {model: openai/gpt-4o}}]
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY, database_url: os.environ/DATABASE_URL}
""")
    assert conv.config["server"] == {"master_key": {"$env": "LITELLM_MASTER_KEY"},
                                     "database_url": {"$env": "DATABASE_URL"}}
    assert not _messages(conv, "action")
    _validate(conv, tmp_path)
    settings = load_settings(env={"LITELLM_MASTER_KEY": "sk-from-env-0123456789"}, file={
        "master_key": {"$env": "LITELLM_MASTER_KEY"}})
    assert settings.master_key is not None and settings.master_key.reveal() == "sk-from-env-0123456789"
    with pytest.raises(ConfigError, match=r"server\.master_key: environment variable LITELLM_MASTER_KEY is not set"):
        load_settings(env={}, file={"master_key": {"$env": "LITELLM_MASTER_KEY"}})


def test_bedrock_and_azure_specifics(tmp_path: Path) -> None:
    conv = _convert("""
model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0
      aws_region_name: eu-central-1
      aws_profile_name: prod
      aws_access_key_id: os.environ/CUSTOM_AWS_KEY
      aws_secret_access_key: inline-secret-value
  - model_name: az
    litellm_params:
      model: azure/my-deployment
      api_base: os.environ/AZURE_API_BASE
      api_version: os.environ/AZURE_API_VERSION
      timeout: 30
      stream_timeout: 5
""")
    providers = _providers(conv)
    assert providers["bedrock"] == {"name": "bedrock", "type": "bedrock",
                                    "options": {"region": "eu-central-1", "profile": "prod"}}
    assert providers["azure"]["base_url"] == "https://azure-api-base.invalid"
    assert providers["azure"]["api_key"] == {"$env": "AZURE_API_KEY"}  # LiteLLM's default variable for Azure
    assert providers["azure"]["timeouts"] == {"total": 30, "first_token": 5}
    actions = " ".join(_messages(conv, "action"))
    assert "set AWS_ACCESS_KEY_ID to the value of $CUSTOM_AWS_KEY" in actions
    assert "aws_secret_access_key: written in the file and not copied" in actions
    assert "replace https://azure-api-base.invalid in provider 'azure'" in actions
    assert "api_version came from $AZURE_API_VERSION" in actions
    assert "inline-secret-value" not in conv.render()
    _validate(conv, tmp_path)


def test_wildcards_enable_providers_from_the_environment(tmp_path: Path) -> None:
    conv = _convert("""
model_list:
  - {model_name: "openai/*", litellm_params: {model: "openai/*", api_key: os.environ/OPENAI_API_KEY}}
  - {model_name: "claude-*", litellm_params: {model: hosted_vllm/qwen, api_base: "http://gpu:8000/v1"}}
""")
    assert conv.config["env_providers"] is True
    assert conv.config["models"] == []
    assert _providers(conv) == {"openai": {"name": "openai", "type": "openai", "api_key": {"$env": "OPENAI_API_KEY"}}}
    assert any("'claude-*' is a pattern" in m for m in _messages(conv, "unmapped"))
    _validate(conv, tmp_path)


def test_unserved_modes_are_left_out() -> None:
    conv = _convert("""
model_list:
  - {model_name: rerank, litellm_params: {model: cohere/rerank-english-v3.0}, model_info: {mode: rerank}}
  - {model_name: img, litellm_params: {model: openai/dall-e-3}, model_info: {mode: image_generation}}
""")
    assert conv.config["models"] == [] and conv.config["providers"] == []
    assert len(_messages(conv, "unmapped")) == 2


def test_unknown_keys_are_reported_never_dropped() -> None:
    conv = _convert("""
model_list:
  - model_name: m
    litellm_params: {model: openai/gpt-4o, temperature: 0.2, mystery_param: 1}
    model_info: {base_model: gpt-4o, mystery_info: 2}
    mystery_entry: 3
litellm_settings: {mystery_setting: 4}
general_settings: {mystery_general: 5}
router_settings: {mystery_router: 6}
mystery_section: {a: 1}
environment_variables: {SOME_TOKEN: value-not-copied}
""")
    found = " ".join(_messages(conv))
    for where in ("litellm_params.temperature", "litellm_params.mystery_param", "model_info.base_model",
                  "model_info.mystery_info", "model_list[0].mystery_entry", "litellm_settings.mystery_setting",
                  "general_settings.mystery_general", "router_settings.mystery_router", "mystery_section",
                  "environment_variables: not copied"):
        assert where in found
    assert "value-not-copied" not in conv.render()


# --- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "problem"), [
    ("- just\n- a list\n", "(top level): must be a mapping, not a list"),
    ("42\n", "(top level): must be a mapping, not an integer"),
    ("model_list: {a: 1}\n", "model_list: must be a list, not a mapping"),
    ("model_list: [42]\n", "model_list[0]: must be a mapping, not an integer"),
    ("model_list: [{model_name: 7, litellm_params: {model: openai/x}}]\n",
     "model_list[0].model_name: must be a non-empty string, not an integer"),
    ("model_list: [{model_name: m, litellm_params: [1]}]\n", "model_list[0].litellm_params: must be a mapping"),
    ("model_list: [{model_name: m, litellm_params: {api_key: x}}]\n",
     "model_list[0].litellm_params.model: must be a non-empty string, not nothing"),
    ("model_list: [{model_name: m, litellm_params: {model: openai/x, rpm: lots}}]\n",
     "model_list[0].litellm_params.rpm: must be a number, not the string 'lots'"),
    ("model_list: [{model_name: m, litellm_params: {model: openai/x, weight: -1}}]\n",
     "model_list[0].litellm_params.weight: must be more than 0, not -1"),
    ("model_list: [{model_name: m, litellm_params: {model: openai/x, input_cost_per_token: .nan}}]\n",
     "model_list[0].litellm_params.input_cost_per_token: must be a number"),
    ("model_list: [{model_name: m, litellm_params: {model: openai/x, timeout: true}}]\n",
     "model_list[0].litellm_params.timeout: must be a number, not a boolean"),
    ("model_list: [{model_name: \"bad\\u0000name\", litellm_params: {model: openai/x}}]\n",
     "model_list[0].model_name: must be at most 256 printable characters"),
    ("router_settings: {num_retries: -2}\n", "router_settings.num_retries: must be a whole number"),
    ("general_settings: {master_key: 12345}\n", "general_settings.master_key: must be a string"),
    ("general_settings: {master_key: os.environ/not a name}\n", "general_settings.master_key: names no valid"),
    ("litellm_settings: {json_logs: boolean}\n", "litellm_settings.json_logs: must be true or false"),
    ("{1: a}\n", "(top level): keys must be strings"),
    ("a: 2024-13-45\n", "invalid YAML: ValueError"),
])
def test_wrong_types_are_errors_naming_their_place(text: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        import_litellm_file(str(path))
    assert problem in err.value.render()


def test_a_yaml_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nmodel_list: *a8\n")
    with pytest.raises(ConfigError, match=f"more than {MAX_VALUES} values once YAML aliases are expanded"):
        import_litellm_file(str(path))


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("model_list: &loop [*loop]\n")
    with pytest.raises(ConfigError):
        import_litellm_file(str(path))


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("model_list: []\n" + "#" * MAX_BYTES)
    with pytest.raises(ConfigError, match=f"larger than {MAX_BYTES} bytes"):
        import_litellm_file(str(path))


def test_deep_nesting_and_bad_bytes_are_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ConfigError):
        import_litellm_file(str(deep))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00model_list")
    with pytest.raises(ConfigError, match="not UTF-8"):
        import_litellm_file(str(binary))
    with pytest.raises(ConfigError, match="cannot read file"):
        import_litellm_file(str(tmp_path / "missing.yaml"))


def test_an_empty_file_converts_to_an_empty_config(tmp_path: Path) -> None:
    conv = convert(None, "empty.yaml")
    assert conv.config == {"providers": [], "models": [], "env_providers": False}
    _validate(conv, tmp_path)


def test_input_echoed_in_the_report_cannot_break_out_of_its_comment(tmp_path: Path) -> None:
    conv = _convert("""
model_list:
  - model_name: m
    litellm_params: {model: openai/gpt-4o, api_base: "x\\nserver: {port: 1}", "evil\\nkey": 1}
""")
    text = conv.render()
    assert yaml.safe_load(text).get("server") is None
    assert all(line.startswith("#") for line in text.split("\n\n", 1)[0].splitlines())
    _validate(conv, tmp_path)


@pytest.mark.parametrize(("params", "problem"), [
    ("input_cost_per_token: 1.0e+300", "input_cost_per_token: must be at most 1"),
    ("timeout: 1.0e+300", "timeout: must be at most 86400"),
])
def test_numbers_out_of_bounds_are_errors(params: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _convert(f"model_list: [{{model_name: m, litellm_params: {{model: openai/x, {params}}}}}]")


def test_an_inline_key_never_shares_a_variable_another_provider_reads(tmp_path: Path) -> None:
    conv = _convert("""
model_list:
  - {model_name: a, litellm_params: {model: openai/gpt-4o, api_key: sk-inline-one}}
  - {model_name: b, litellm_params: {model: openai/gpt-4o-mini}}
  - {model_name: c, litellm_params: {model: azure/dep}}
""")
    providers = _providers(conv)
    assert providers["openai-2"]["api_key"] == {"$env": "OPENAI_API_KEY"}  # LiteLLM's default variable
    assert providers["openai"]["api_key"] == {"$env": "OPENAI_API_KEY_2"}
    assert any("set OPENAI_API_KEY_2 to it" in m for m in _messages(conv, "action"))
    # Azure without api_base: LiteLLM reads AZURE_API_BASE; ours is written in the file.
    assert providers["azure"]["base_url"] == "https://azure-api-base.invalid"
    assert any("api_base came from $AZURE_API_BASE" in m for m in _messages(conv, "action"))
    _validate(conv, tmp_path)


def test_base_model_prices_a_deployment_from_the_price_table(tmp_path: Path) -> None:
    conv = _convert("""
model_list:
  - model_name: gpt-4-prod
    litellm_params: {model: azure/my-gpt4-deployment, api_base: "https://x.openai.azure.com"}
    model_info: {base_model: azure/gpt-4o-mini}
  - model_name: unknown
    litellm_params: {model: azure/other, api_base: "https://x.openai.azure.com"}
    model_info: {base_model: no-such-model-anywhere}
""")
    pricing = _models(conv)["gpt-4-prod"]["pricing"]
    assert pricing["unit"] == "1m_tokens" and pricing["prompt"] > 0 and pricing["completion"] > pricing["prompt"]
    assert any("priced as gpt-4o-mini from the price table" in m for m in _messages(conv, "note"))
    assert any("'no-such-model-anywhere' is not in the price table" in m for m in _messages(conv, "unmapped"))
    _validate(conv, tmp_path)


def test_supports_flags_in_litellm_params_count_too() -> None:
    conv = _convert("""
model_list:
  - model_name: my-vllm-model
    litellm_params: {model: hosted_vllm/llama-3-8b, api_base: "http://localhost:8000",
                     supports_function_calling: false, supports_response_schema: false}
""")
    assert _models(conv)["my-vllm-model"]["capabilities"] == {"vision": False, "function_calling": False,
                                                              "json_mode": False}
    assert not _messages(conv, "unmapped")


def test_urls_and_headers_with_control_characters_are_not_copied() -> None:
    conv = _convert("""
model_list:
  - model_name: m
    litellm_params: {model: openai/gpt-4o, api_base: "http://a\\r\\nX-Evil: 1", organization: "org\\r\\nX-Evil: 1"}
""")
    provider = _providers(conv)["openai-compatible"]
    assert provider["base_url"] == "https://replace-me.invalid"
    assert "headers" not in provider
    assert "X-Evil" not in yaml.safe_dump(conv.config)


def test_server_settings_by_reference(tmp_path: Path) -> None:
    secret = tmp_path / "db_url"
    secret.write_text("postgresql://parrot@db/parrot\n")
    settings = load_settings(env={"MY_REDIS": "redis://r:6379/0"}, file={
        "database_url": {"$file": str(secret)}, "redis_url": {"$env": "MY_REDIS"}})
    assert settings.database_url == "postgresql://parrot@db/parrot"
    assert settings.redis_url == "redis://r:6379/0"
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, file={"redis_url": {"$vault": "x"}, "database_url": {"$file": str(tmp_path / "no")}})
    assert "server.redis_url: a value given by reference is {$env: VARIABLE_NAME} or {$file: PATH}" in str(err.value)
    assert "server.database_url: cannot read" in str(err.value)
