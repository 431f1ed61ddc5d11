"""Settings are declared once (`parrotrouter.settings.Settings`): the loader, the `serve` options and
the README table come from that declaration, and every setting is read somewhere."""

from __future__ import annotations

import ast
import dataclasses
import logging
from pathlib import Path

import click
import pytest

from parrotrouter import settings as S
from parrotrouter.cli import _cli_settings, serve
from parrotrouter.errors import ConfigError

PACKAGE = Path(S.__file__).parent
README = PACKAGE.parent / "README.md"


def test_the_readme_lists_every_setting_as_declared() -> None:
    table = S.markdown_table()
    assert table in README.read_text(), (
        "README.md's settings table differs from the settings declared in parrotrouter/settings.py; "
        "replace it with the output of `python -m parrotrouter.settings`")
    for setting in S.REGISTRY:
        assert f"| `{setting.name}` | `{setting.env}` |" in table


def test_every_field_of_settings_is_a_setting() -> None:
    names = [f.name for f in dataclasses.fields(S.Settings)]
    assert names == [s.name for s in S.REGISTRY]
    assert len(set(names)) == len(names)
    defaults = S.load_settings(env={})
    for s in S.REGISTRY:
        if s.name != "home":  # resolved to ~/.parrotrouter
            assert getattr(defaults, s.name) == s.default, s.name


def _parse_serve(args: list[str]) -> dict[str, object]:
    ctx = serve.make_context("serve", args)
    return _cli_settings(**ctx.params)


def test_serve_has_one_option_per_setting_parsed_like_the_environment() -> None:
    options = {opt for p in serve.params if isinstance(p, click.Option) for opt in (*p.opts, *p.secondary_opts)}
    for s in S.REGISTRY:
        if s.cli:
            assert s.option in options, s.name
        else:  # secrets and internals are not on the command line (it shows in `ps`)
            assert s.option not in options, s.name
    assert _parse_serve([]) == {}  # nothing given: environment, file and defaults decide
    given = _parse_serve(["--port", "9001", "--no-local-models", "--access-log", "--log-level", "WARNING",
                          "--max-retry-wait", "0.5", "--home", "/tmp/x"])
    resolved = S.load_settings(given, env={"PARROTROUTER_PORT": "1", "PARROTROUTER_ACCESS_LOG": "false"})
    assert (resolved.port, resolved.local_models, resolved.access_log, resolved.log_level,
            resolved.max_retry_wait, resolved.home) == (9001, False, True, "warning", 0.5, Path("/tmp/x"))
    with pytest.raises(ConfigError) as err:
        S.load_settings(_parse_serve(["--port", "eighty", "--log-level", "loud"]), env={})
    assert "--port" in err.value.render() and "--log-level" in err.value.render()
    for port in ("0", "-1", "65536", "99999"):
        with pytest.raises(ConfigError, match="TCP port from 1 to 65535"):
            S.load_settings(_parse_serve(["--port", port]), env={})


@pytest.mark.parametrize("where", ["env", "file"])
def test_values_are_parsed_the_same_wherever_they_come_from(where: str) -> None:
    raw = {"access_log": "false", "workers": "3", "log_level": "Debug"}
    if where == "env":
        resolved = S.load_settings(env={f"PARROTROUTER_{k.upper()}": v for k, v in raw.items()})
    else:
        resolved = S.load_settings(env={}, file=raw)
    assert (resolved.access_log, resolved.workers, resolved.log_level) == (False, 3, "debug")


def test_every_setting_is_read_by_the_package() -> None:
    """A declared setting nobody reads is a promise not kept (log_level once was one)."""
    read: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                read.add(node.attr)
    settings_source = (PACKAGE / "settings.py").read_text()
    for s in S.REGISTRY:
        # the per-key limit defaults are read through Settings.limit_defaults
        assert s.name in read or f"self.{s.name}" in settings_source.split("def limit_defaults", 1)[1], s.name


def test_the_log_level_sets_the_root_logger() -> None:
    from parrotrouter.server import _setup_logging

    root = logging.getLogger()
    before = root.level
    try:
        _setup_logging("error")
        assert root.level == logging.ERROR
    finally:
        root.setLevel(before)


def test_health_probe_settings_have_the_bounds_of_a_providers_health_check() -> None:
    """As HealthCheckConfig bounds a provider's own interval (0.1-86400) and timeout (at most 60)."""
    for value in ("0.001", "0.09", "86401", "-1", "inf", "nan"):
        with pytest.raises(ConfigError, match=r"PARROTROUTER_HEALTH_PROBE_INTERVAL: must be 0 or from 0\.1"):
            S.load_settings(env={"PARROTROUTER_HEALTH_PROBE_INTERVAL": value})
    for value in ("0", "60.5", "1e9", "-1", "nan"):
        with pytest.raises(ConfigError, match="PARROTROUTER_HEALTH_PROBE_TIMEOUT: must be more than 0 and at most 60"):
            S.load_settings(env={"PARROTROUTER_HEALTH_PROBE_TIMEOUT": value})
    resolved = S.load_settings(env={}, file={"health_probe_interval": 0, "health_probe_timeout": 60})
    assert (resolved.health_probe_interval, resolved.health_probe_timeout) == (0, 60)
    assert S.load_settings(env={}, file={"health_probe_interval": 0.1}).health_probe_interval == 0.1
