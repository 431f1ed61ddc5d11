"""`parrotrouter config import-litellm` as a user runs it: click's runner for the command's
contract (stdout the file, stderr the report, exit 2 on bad input, no traceback), and one real
process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from parrotrouter.cli import main

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "litellm"
EXAMPLE = DATA / "docs_load_balancing.yaml"
GOLDEN = DATA / "expected" / "docs_load_balancing.yaml"


def test_converts_to_stdout_and_reports_on_stderr() -> None:
    result = CliRunner().invoke(main, ["config", "import-litellm", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout == GOLDEN.read_text(encoding="utf-8")
    assert "router_settings.redis_host/redis_port/redis_password: set REDIS_URL to" in result.stderr
    assert "litellm_settings.fallbacks: no cross-model fallback" in result.stderr
    assert result.stderr.rstrip().endswith("2 model(s) on 1 provider(s)")


def test_writes_a_file_that_config_check_accepts(tmp_path: Path) -> None:
    out = tmp_path / "parrotrouter.yaml"
    runner = CliRunner()
    result = runner.invoke(main, ["config", "import-litellm", str(EXAMPLE), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert out.read_text(encoding="utf-8") == GOLDEN.read_text(encoding="utf-8")
    assert f"written to {out}" in result.stderr
    checked = runner.invoke(main, ["config", "check", str(out)],
                            env={"OPENAI_API_KEY": "sk-test", "REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert checked.exit_code == 0, checked.output
    assert "OK (1 providers, 2 models)" in checked.stdout


def test_bad_input_exits_2_with_every_problem_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list:\n  - model_name: 5\n    litellm_params: {model: openai/x, weight: heavy}\n")
    result = CliRunner().invoke(main, ["config", "import-litellm", str(bad)])
    assert result.exit_code == 2
    assert "model_list[0].model_name: must be a non-empty string, not an integer" in result.stderr
    assert "model_list[0].litellm_params.weight: must be a number, not the string 'heavy'" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    broken = CliRunner().invoke(main, ["config", "import-litellm", str(DATA / "example_proxy_config_broken.yaml")])
    assert broken.exit_code == 2
    assert "line 36, column 3: invalid YAML" in broken.stderr


def test_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    source = tmp_path / "config.yaml"
    source.write_text(EXAMPLE.read_text())
    result = CliRunner().invoke(main, ["config", "import-litellm", str(source), "-o", str(source)])
    assert result.exit_code == 2
    assert source.read_text() == EXAMPLE.read_text()


def test_a_real_process(tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "parrotrouter", "config", "import-litellm", str(EXAMPLE),
                           "-o", str(out)], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8") == GOLDEN.read_text(encoding="utf-8")
    assert "To do before use (2):" in done.stderr
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join(['*a' if i == 1 else f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)))
    refused = subprocess.run([sys.executable, "-m", "parrotrouter", "config", "import-litellm", str(bomb)],
                             capture_output=True, text=True, env=env, timeout=60, check=False)
    assert refused.returncode == 2
    assert "once YAML aliases are expanded: refused" in refused.stderr and "Traceback" not in refused.stderr


def test_config_check_names_a_server_reference_that_is_not_set(tmp_path: Path) -> None:
    out = tmp_path / "parrotrouter.yaml"
    runner = CliRunner()
    assert runner.invoke(main, ["config", "import-litellm", str(DATA / "docs_config_schema.yaml"),
                                "-o", str(out)]).exit_code == 0
    env = {"AZURE_API_KEY": "k", "REDIS_URL": "redis://127.0.0.1:6379/0", "LITELLM_MASTER_KEY": ""}
    missing = runner.invoke(main, ["config", "check", str(out)], env=env)
    assert missing.exit_code == 1
    assert "server.master_key: environment variable LITELLM_MASTER_KEY is not set" in missing.stderr
    ok = runner.invoke(main, ["config", "check", str(out)], env={**env, "LITELLM_MASTER_KEY": "sk-1234"})
    assert ok.exit_code == 0, ok.output
