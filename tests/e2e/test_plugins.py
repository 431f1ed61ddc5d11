"""An out-of-tree provider package is picked up through the `parrotrouter.providers` entry points,
exactly as the built-ins are: no file of the gateway names it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from parrotrouter.providers.registry import provider_types
from tests.conftest import REPO, Gateway

PLUGIN = textwrap.dedent('''
    """A provider type from another package: it answers with the last user message, reversed."""
    from parrotrouter.catalog import ProviderSpec
    from parrotrouter.providers.base import ChatCall, Provider
    from parrotrouter.providers.registry import ProviderType
    from pydantic import BaseModel, ConfigDict


    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        prefix: str = ""


    class Mirror(Provider):
        def _text(self, call: ChatCall) -> str:
            return self.spec.options["prefix"] + str(call.request.messages[-1].content)[::-1]

        async def chat(self, call):
            return {"id": "x", "object": "chat.completion", "created": 0, "model": call.deployment.upstream_model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": self._text(call)}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

        async def chat_stream(self, call):
            yield [{"choices": [{"index": 0, "delta": {"content": self._text(call)}, "finish_reason": "stop"}]}]


    PROVIDER = ProviderType(name="mirror", display_name="Mirror", build=Mirror, options=Options,
                            needs_base_url=False)
''')


def _plugin_dir(tmp_path: Path) -> Path:
    """The package and its installed metadata (what `pip install` would leave), on a path of its own."""
    site = tmp_path / "site"
    (site / "mirror_plugin").mkdir(parents=True)
    (site / "mirror_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "mirror_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mirror-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[parrotrouter.providers]\nmirror = mirror_plugin:PROVIDER\n")
    return site


def _config(**options: Any) -> dict[str, Any]:
    return {"env_providers": False,
            "providers": [{"name": "mirrors", "type": "mirror", "options": options}],
            "models": [{"id": "mirror-1", "deployments": [{"provider": "mirrors", "model": "m"}]}]}


def test_an_installed_plugin_serves_requests(make_gateway: Any, tmp_path: Path) -> None:
    site = _plugin_dir(tmp_path)
    gw: Gateway = make_gateway(_config(prefix="> "), env={"PYTHONPATH": f"{site}:{REPO}"}).start()
    client = gw.client()
    resp = client.chat.completions.create(model="mirror-1", messages=[{"role": "user", "content": "parrot"}])
    assert resp.choices[0].message.content == "> torrap" and resp.model_extra["provider"] == "mirrors"
    chunks = list(client.chat.completions.create(model="mirror-1", stream=True,
                                                 messages=[{"role": "user", "content": "abc"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "> cba"


def test_config_check_knows_the_plugin_and_its_options(tmp_path: Path) -> None:
    site = _plugin_dir(tmp_path)
    env = {"PYTHONPATH": f"{site}:{REPO}", "PATH": "/usr/bin:/bin"}

    def check(config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(config))
        return subprocess.run([sys.executable, "-m", "parrotrouter", "config", "check", str(path)],
                              capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)

    assert check(_config(prefix="x")).returncode == 0
    wrong = check(_config(colour="red"))
    assert wrong.returncode == 1 and "providers[0].options" in wrong.stderr and "colour" in wrong.stderr
    unknown = check({**_config(), "providers": [{"name": "x", "type": "nope"}]})
    assert unknown.returncode == 1 and "unknown provider type 'nope'" in unknown.stderr
    assert "mirror" in unknown.stderr and "openai" in unknown.stderr  # the known types are listed


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "llamacpp"])
def test_the_built_ins_register_through_the_same_entry_points(name: str) -> None:
    from importlib.metadata import entry_points

    assert name in {ep.name for ep in entry_points(group="parrotrouter.providers")}
    assert provider_types()[name].name == name
