"""One typed registry of server settings.

Each setting is declared once with its type, default, environment variable and help. Values are
resolved with the precedence CLI > environment (`PARROTROUTER_*`) > config file (`server:`) >
default. Booleans are parsed explicitly ("false", "0", "no", "off" are false).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ratelimit.rules import Defaults

from .errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r} (use true/false)")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    return float(value)


def _parse_positive(value: Any) -> float:
    number = _parse_float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(f"must be a positive number of seconds, not {value!r}")
    return number


def _parse_count(value: Any) -> int:
    number = _parse_int(value)
    if number < 1:
        raise ValueError(f"must be at least 1, not {value!r}")
    return number


def _parse_path(value: Any) -> Path:
    return Path(os.path.expanduser(str(value)))


def _parse_optional_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class Secret:
    """A value that must never be printed: masked in repr and str (cf. starlette's Secret)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def _parse_secret(value: Any) -> Secret | None:
    return None if value in (None, "") else Secret(str(value))


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "PARROTROUTER_" + self.name.upper()


def _default_home() -> Path:
    return Path(os.path.expanduser("~/.parrotrouter"))


REGISTRY: tuple[Setting, ...] = (
    Setting("home", _parse_path, None, "Data directory for state (default ~/.parrotrouter)."),
    Setting("config", _parse_optional_str, None, "Path of the YAML configuration file."),
    Setting("host", str, "127.0.0.1", "Interface to listen on."),
    Setting("port", _parse_int, 8000, "TCP port to listen on."),
    Setting("workers", _parse_int, 1, "Number of server worker processes."),
    Setting("master_key", _parse_secret, None, "Master key (pr-...). Overrides the stored one."),
    Setting("database_url", _parse_optional_str, None, "SQLAlchemy URL; default SQLite in home."),
    Setting("redis_url", _parse_optional_str, None, "Redis URL for shared limits and state."),
    Setting("max_body_bytes", _parse_int, 10 * 2**20, "Largest request body, after decompression."),
    Setting("log_level", str, "info", "Log level: debug, info, warning, error."),
    Setting("access_log", parse_bool, False, "Log one line per request."),
    Setting("local_models", parse_bool, True, "Serve the embedded local model when installed."),
    Setting("shutdown_timeout", _parse_float, 10.0, "Seconds to drain requests on SIGTERM."),
    Setting("accounting", parse_bool, True,
            "Keys, credits and the usage ledger (false: master key only, nothing recorded)."),
    Setting("accounting_strict", parse_bool, False,
            "Raise on a failed ledger write instead of logging and retrying (for tests)."),
    Setting("key_refresh_seconds", _parse_positive, 1.0, "How often each process checks for changed API keys."),
    Setting("ledger_flush_seconds", _parse_positive, 0.2,
            "How often the usage ledger writes its batch (a crash loses at most this much)."),
    Setting("rate_limit_rpm", _parse_int, 0, "Default requests per minute per key (0: none)."),
    Setting("rate_limit_rpd", _parse_int, 0, "Default requests per day per key (0: none)."),
    Setting("rate_limit_tpm", _parse_int, 0, "Default tokens per minute per key (0: none)."),
    Setting("user_rate_limit_rpm", _parse_int, 0, "Requests per minute per end user (the request's `user`)."),
    Setting("user_rate_limit_tpm", _parse_int, 0, "Tokens per minute per end user (the request's `user`)."),
    Setting("limits_fail_open", parse_bool, False, "Admit requests when Redis is unreachable (default: 503)."),
    Setting("redis_timeout", _parse_float, 0.25, "Seconds before a Redis connect or command gives up."),
    Setting("breaker_failure_threshold", _parse_int, 5, "Failures in a row that open a deployment's breaker."),
    Setting("breaker_success_threshold", _parse_int, 1, "Successful probes that close it again."),
    Setting("breaker_cooldown", _parse_float, 30.0, "Seconds a breaker stays open before probing."),
    Setting("max_attempts", _parse_int, 8, "Upstream calls one request may make (retries and failovers included)."),
    Setting("request_timeout", _parse_positive, 600.0,
            "Seconds one request may spend on upstream attempts, retries and waits before its answer starts."),
    Setting("max_retry_wait", _parse_float, 5.0,
            "Longest wait before a retry (an upstream's Retry-After included) unless X-Retry-Delay-Ms asks more."),
    Setting("model_host", _parse_optional_str, None,
            "Internal: unix socket of the shared local-model host (set by the supervisor)."),
    Setting("header_timeout", _parse_positive, 10.0,
            "Seconds a client has to send a request's headers (from connect, or from the request's first byte)."),
    Setting("body_timeout", _parse_positive, 60.0,
            "Seconds a client has to send a request's body once its headers arrived (then 408)."),
    Setting("max_connections", _parse_count, 4096,
            "Open client connections per process; beyond it new ones get a 503 and are closed."),
)
_BY_NAME = {s.name: s for s in REGISTRY}


@dataclasses.dataclass(frozen=True)
class Settings:
    home: Path
    config: str | None
    host: str
    port: int
    workers: int
    master_key: Secret | None
    database_url: str | None
    redis_url: str | None
    max_body_bytes: int
    log_level: str
    access_log: bool
    local_models: bool
    shutdown_timeout: float
    accounting: bool
    accounting_strict: bool
    key_refresh_seconds: float
    ledger_flush_seconds: float
    rate_limit_rpm: int
    rate_limit_rpd: int
    rate_limit_tpm: int
    user_rate_limit_rpm: int
    user_rate_limit_tpm: int
    limits_fail_open: bool
    redis_timeout: float
    breaker_failure_threshold: int
    breaker_success_threshold: int
    breaker_cooldown: float
    max_attempts: int
    request_timeout: float
    max_retry_wait: float
    model_host: str | None
    header_timeout: float
    body_timeout: float
    max_connections: int

    @functools.cached_property
    def limit_defaults(self) -> Defaults:  # asked on every request: built once
        from .ratelimit.rules import Defaults

        return Defaults(rpm=self.rate_limit_rpm, rpd=self.rate_limit_rpd, tpm=self.rate_limit_tpm,
                        user_rpm=self.user_rate_limit_rpm, user_tpm=self.user_rate_limit_tpm)

    def with_overrides(self, **values: Any) -> Settings:
        return dataclasses.replace(self, **values)


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    file: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve every setting: CLI > environment > config file (`server:` section) > default."""
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    env = os.environ if env is None else env
    file = file or {}
    problems = [f"server.{k}: unknown setting" for k in file if k not in _BY_NAME]
    values: dict[str, Any] = {}
    for setting in REGISTRY:
        if setting.name in cli:
            raw, where = cli[setting.name], f"--{setting.name.replace('_', '-')}"
        elif setting.env in env:
            raw, where = env[setting.env], setting.env
        elif setting.name in file:
            raw, where = file[setting.name], f"server.{setting.name}"
        else:
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise ConfigError(problems, "settings")
    if values["home"] is None:
        values["home"] = _default_home()
    if not 1 <= values["workers"] <= 64:
        raise ConfigError([f"workers: must be between 1 and 64, got {values['workers']}"], "settings")
    if not 1 <= values["max_attempts"] <= 100:
        raise ConfigError([f"max_attempts: must be between 1 and 100, got {values['max_attempts']}"], "settings")
    if not 0 <= values["max_retry_wait"] <= 3600:
        raise ConfigError([f"max_retry_wait: must be between 0 and 3600 s, got {values['max_retry_wait']}"],
                          "settings")
    return Settings(**values)


def describe() -> list[tuple[str, str, str]]:
    """(name, env var, help) for every setting, for `--help` texts and docs."""
    return [(s.name, s.env, s.help) for s in REGISTRY]
