"""Run the real clients from npm (tests/clients/node: Claude Code, Codex, the AI SDK) against a base
URL, offline: each gets a fresh home directory, no telemetry, no update checks, no prompts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent / "node"
BIN = NODE_DIR / "node_modules" / ".bin"
TASK = "Run `cat parrot.txt` in the current directory and tell me what it says."
SECRET = "The parrot's name is Polly-7f3a."  # what parrot.txt holds; only the tool can read it


def install() -> None:
    """`npm ci` the pinned clients when node_modules is missing or older than the lock file."""
    stamp = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the client tests (tests/clients/node)")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)], capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"npm ci in {NODE_DIR} failed ({done.returncode}):\n{done.stderr[-4000:]}")


def _base_env(home: Path) -> dict[str, str]:
    # Nothing of the caller's own client setup leaks in; CI too, so a run under CI is the same run.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANTHROPIC_", "OPENAI_", "CLAUDE_", "CODEX_")) and k != "CI"}
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"), "NO_COLOR": "1"}


def workspace(root: Path) -> Path:
    """A working directory holding the file the agent task reads."""
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "parrot.txt").write_text(SECRET + "\n")
    return work


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Run:
        assert self.returncode == 0, f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        return self


def claude(root: Path, base_url: str, key: str, model: str, small_model: str | None = None,
           prompt: str = TASK, timeout: float = 120) -> Run:
    """`claude -p` at `base_url` (the Anthropic API root, no /v1) with `key` as ANTHROPIC_AUTH_TOKEN;
    only `cat` may run through Bash, without a prompt."""
    home = root / "claude-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**_base_env(home), "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_AUTH_TOKEN": key,
           "ANTHROPIC_MODEL": model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": small_model or model,
           "CLAUDE_CONFIG_DIR": str(home / ".claude"),
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
           "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1",
           "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1"}
    cmd = [str(BIN / "claude"), "-p", prompt, "--model", model, "--allowedTools", "Bash(cat:*)",
           "--output-format", "text", "--no-session-persistence"]
    done = subprocess.run(cmd, cwd=workspace(root), env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return Run(done.returncode, done.stdout, done.stderr)


CODEX_CONFIG = """\
model = "{model}"
model_provider = "parrotrouter"
check_for_update_on_startup = false

[model_providers.parrotrouter]
name = "ParrotRouter"
base_url = "{base_url}"
wire_api = "responses"
env_key = "PARROTROUTER_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false
"""


def codex(root: Path, base_url: str, key: str, model: str, prompt: str = TASK, timeout: float = 120) -> Run:
    """`codex exec` with a model provider at `base_url` (ending in /v1), key from PARROTROUTER_API_KEY;
    commands run without approval in a workspace-write sandbox, outside a git repository."""
    home = root / "codex-home"
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(CODEX_CONFIG.format(model=model, base_url=base_url))
    env = {**_base_env(home), "CODEX_HOME": str(home / ".codex"), "PARROTROUTER_API_KEY": key}
    last = root / "codex-last-message.txt"
    cmd = [str(BIN / "codex"), "exec", "--skip-git-repo-check", "--ephemeral", "--color", "never",
           "--sandbox", "workspace-write", "-c", 'approval_policy="never"', "--output-last-message", str(last),
           prompt]
    done = subprocess.run(cmd, cwd=workspace(root), env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    answer = last.read_text() if last.exists() else ""
    return Run(done.returncode, answer, done.stdout + done.stderr)


def ai_sdk(spec: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """One AI SDK call (tests/clients/node/ai_sdk.mjs), its result as a dict."""
    node = shutil.which("node")
    assert node is not None, "node is needed for the AI SDK tests"
    done = subprocess.run([node, str(NODE_DIR / "ai_sdk.mjs"), json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, cwd=NODE_DIR, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"ai_sdk.mjs {spec} exited {done.returncode}:\n{done.stderr}"
    return json.loads(done.stdout)  # type: ignore[no-any-return]
