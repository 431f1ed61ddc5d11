"""One typed registry of server settings.

Each setting is declared once with its type, default, environment variable and help. Values are
resolved with the precedence CLI > environment (`PARROTROUTER_*`) > config file (`server:`) >
default. Booleans are parsed explicitly ("false", "0", "no", "off" are false).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
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


def _ranged(parse: Callable[[Any], Any], ok: Callable[[Any], bool], wanted: str) -> Callable[[Any], Any]:
    """A parser of numbers within a range: `parse`, then `ok`, else "must be <wanted>"."""

    def parse_ranged(value: Any) -> Any:
        number = parse(value)
        if not ok(number):
            raise ValueError(f"must be {wanted}, not {value!r}")
        return number

    return parse_ranged


_parse_count = _ranged(_parse_int, lambda n: n >= 1, "at least 1")
_parse_port = _ranged(_parse_int, lambda n: 1 <= n <= 65535, "a TCP port from 1 to 65535")
_parse_non_negative_int = _ranged(_parse_int, lambda n: n >= 0, "0 or more")
_parse_window = _ranged(_parse_float, lambda n: 10 <= n <= 86400, "from 10 to 86400 seconds")
# The bounds of a provider's health_check.interval (and 0: off) and health_check.timeout.
_parse_probe_interval = _ranged(_parse_float, lambda n: n == 0 or 0.1 <= n <= 86400,
                                "0 or from 0.1 to 86400 seconds")
_parse_probe_timeout = _ranged(_parse_float, lambda n: 0 < n <= 60, "more than 0 and at most 60 seconds")


_parse_discovery_interval = _ranged(_parse_float, lambda n: n == 0 or 5 <= n <= 86400,
                                   "0 (at start only) or from 5 to 86400 seconds")
_parse_discovery_timeout = _ranged(_parse_float, lambda n: 0 < n <= 120, "more than 0 and at most 120 seconds")


def _parse_discover_models(value: Any) -> str:
    """`auto`, `none`, or provider names separated by commas (normalised: `a,b`)."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names:
        return "none"
    if len(names) == 1 and names[0].lower() in ("auto", "none"):
        return names[0].lower()
    if len(names) > 256 or any(not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", n) for n in names):
        raise ValueError(f"must be auto, none, or provider names separated by commas, not {value!r}")
    return ",".join(names)


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


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_NETWORKS = 64


def _parse_networks(value: Any) -> tuple[IPNetwork, ...]:
    """CIDR networks, as a comma-separated string or a list (an address alone is its own /32 or /128)."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    texts = [str(item).strip() for item in items if str(item).strip()]
    if len(texts) > MAX_NETWORKS:
        raise ValueError(f"at most {MAX_NETWORKS} networks, not {len(texts)}")
    try:
        return tuple(ipaddress.ip_network(text, strict=False) for text in texts)
    except ValueError as exc:
        raise ValueError(f"not a network (CIDR): {exc}") from None


def _parse_token(value: Any) -> Secret | None:
    """A bearer token of our own: 16-256 visible ASCII characters (a header value; guessable if short)."""
    if value in (None, ""):
        return None
    text = str(value)
    if not (16 <= len(text) <= 256 and text.isascii() and text.isprintable() and " " not in text):
        raise ValueError("must be 16 to 256 visible ASCII characters without spaces")
    return Secret(text)


def _parse_model_name(value: Any) -> str | None:
    """A model id or alias as the config file and requests name them: at most 256 visible characters."""
    name = _parse_optional_str(value)
    if name is not None and (len(name) > 256 or not name.isprintable() or name != name.strip()):
        raise ValueError("must be a model id or alias: at most 256 printable characters, no surrounding spaces")
    return name


def _default_home() -> Path:
    return Path(os.path.expanduser("~/.parrotrouter"))


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")


def _parse_log_format(value: Any) -> str:
    fmt = str(value).strip().lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}, not {value!r}")
    return fmt


def _parse_http_url(value: Any) -> str | None:
    url = _parse_optional_str(value)
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
    return url


def _parse_log_level(value: Any) -> str:
    level = str(value).strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return level


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting as `Settings` declares it (read off its fields: declared once, used by the
    loader, the `serve` command's options and the README table)."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    shown_default: str  # the default as the docs and --help say it
    cli: bool  # an option of `parrotrouter serve` (secrets and internals are not)
    flag: bool  # a boolean: `--name/--no-name` on the command line

    @property
    def env(self) -> str:
        return "PARROTROUTER_" + self.name.upper()

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


def setting(default: Any, parse: Callable[[Any], Any], help: str, *, shown: str | None = None,
            cli: bool = True) -> Any:
    """Declare a field of `Settings` as a setting (its type is the field's annotation)."""
    if shown is None:
        shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else f"{default:g}" \
            if isinstance(default, float) else str(default)
    return dataclasses.field(default=default, metadata={
        "setting": (parse, help, shown, cli, parse is parse_bool)})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every server setting, declared once: type, default, parser, help. Resolved by
    `load_settings` with the precedence CLI > environment (`PARROTROUTER_*`) > config file
    (`server:`) > default."""

    home: Path = setting(None, _parse_path, "Data directory: server secret, master key hash, state.",
                         shown="~/.parrotrouter")
    config: str | None = setting(None, _parse_optional_str, "Path of the YAML configuration file.")
    host: str = setting("127.0.0.1", str, "Interface to listen on.")
    port: int = setting(8000, _parse_port, "TCP port to listen on.")
    workers: int = setting(1, _parse_int, "Worker processes sharing the port (SO_REUSEPORT), 1-64.")
    master_key: Secret | None = setting(None, _parse_secret, "Use this master key (pr-...) instead of the stored one.",
                                        shown="generated at first start", cli=False)
    database_url: str | None = setting(None, _parse_optional_str,
                                       "SQLAlchemy URL, e.g. postgresql://user@host/db.", shown="SQLite in home")
    redis_url: str | None = setting(None, _parse_optional_str,
                                    "Redis URL for shared rate limits (needed with workers > 1 and limits).")
    max_body_bytes: int = setting(10 * 2**20, _parse_int, "Largest request body, after decompression.")
    log_level: str = setting("info", _parse_log_level, "Log level: debug, info, warning, error or critical.")
    access_log: bool = setting(False, parse_bool, "Log one line per request.")
    local_models: bool = setting(True, parse_bool, "Serve the embedded local model when installed.")
    auto_model: str | None = setting(None, _parse_model_name, "The model `model: \"auto\"` stands for (an id or "
                                     "alias of the catalog, checked at start); none: the cheapest capable priced "
                                     "model (README: model auto).")
    shutdown_timeout: float = setting(10.0, _parse_float, "Seconds to drain in-flight requests on SIGTERM.")
    accounting: bool = setting(True, parse_bool, "Keys, credits and the usage ledger (false: master key only, "
                               "nothing recorded).")
    accounting_strict: bool = setting(False, parse_bool, "Raise on a failed ledger write instead of logging and "
                                      "retrying (for tests).")
    key_refresh_seconds: float = setting(1.0, _parse_positive, "How soon each process sees changed API keys "
                                         "(seconds).")
    ledger_flush_seconds: float = setting(0.2, _parse_positive, "How often the usage ledger writes its batch "
                                          "(a crash loses at most this much).")
    rate_limit_rpm: int = setting(0, _parse_int, "Default requests per minute per key (0: none).")
    rate_limit_rpd: int = setting(0, _parse_int, "Default requests per day per key (0: none).")
    rate_limit_tpm: int = setting(0, _parse_int, "Default tokens per minute per key (0: none).")
    user_rate_limit_rpm: int = setting(0, _parse_int, "Requests per minute per end user (the request's `user`).")
    user_rate_limit_tpm: int = setting(0, _parse_int, "Tokens per minute per end user (the request's `user`).")
    limits_fail_open: bool = setting(False, parse_bool, "Admit requests when Redis is unreachable (default: 503).")
    redis_timeout: float = setting(0.25, _parse_float, "Seconds before a Redis connect or command gives up.")
    breaker_failure_threshold: int = setting(5, _parse_int, "Failures in a row that open a deployment's breaker.")
    breaker_success_threshold: int = setting(1, _parse_int, "Successful probes that close it again.")
    breaker_cooldown: float = setting(30.0, _parse_float, "Seconds a breaker stays open before probing.")
    max_attempts: int = setting(8, _parse_int, "Upstream calls one request may make, retries and failovers "
                                "included (1-100).")
    request_timeout: float = setting(600.0, _parse_positive, "Seconds one request may spend on upstream attempts, "
                                     "retries and waits before its answer starts.")
    max_retry_wait: float = setting(5.0, _parse_float, "Longest wait before a retry, an upstream's Retry-After "
                                    "included, unless X-Retry-Delay-Ms asks more (0-3600).")
    model_host: str | None = setting(None, _parse_optional_str, "Internal: unix socket of the shared local-model "
                                     "host (set by the supervisor).", cli=False)
    header_timeout: float = setting(10.0, _parse_positive, "Seconds a client has to send a request's headers "
                                    "(slower clients are disconnected).")
    body_timeout: float = setting(60.0, _parse_positive, "Seconds a client has to send a request's body once its "
                                  "headers arrived (then 408).")
    max_connections: int = setting(4096, _parse_count, "Open client connections per process; beyond it new ones "
                                   "get a 503 and are closed.")
    responses_max_age_days: float = setting(30.0, _parse_positive, "Days a stored Responses API response "
                                            "(`store`, the default) is kept for previous_response_id and GET "
                                            "/v1/responses/{id}.")
    # Metrics (observe/metrics.py, api/metrics/): GET /metrics in Prometheus format.
    metrics: bool = setting(True, parse_bool, "Serve GET /metrics (Prometheus) and count every request for it "
                            "(false: no /metrics, nothing counted).")
    metrics_token: Secret | None = setting(None, _parse_token, "Bearer token that may read /metrics (besides "
                                           "the master key).", cli=False)
    metrics_public_networks: tuple[IPNetwork, ...] = setting((), _parse_networks, "Comma-separated networks "
                                                             "(CIDR) that may read /metrics without a key, e.g. "
                                                             "10.0.0.0/8.", shown="none")
    # Logging headers and content retention (api/logging_headers.py, accounting/content.py): no
    # prompt or answer is stored unless the operator allows it here AND the request asks for it.
    content_logging: bool = setting(False, parse_bool, "Allow a request to have its prompt and answer stored "
                                    "(X-Logging-Level: debug with X-Log-Request / X-Log-Response); off: no "
                                    "content is ever stored.")
    content_retention_days: float = setting(30.0, _parse_positive, "Days stored prompts and answers are kept "
                                            "(then deleted, and never shown).")
    content_max_bytes: int = setting(1_048_576, _parse_count, "Bytes of a stored prompt, and of a stored answer, "
                                     "at most (longer ones are cut and flagged as truncated).")
    content_purge_seconds: float = setting(600.0, _parse_positive, "Seconds between deletions of expired "
                                           "content (each process; safe with several).")
    # Provider health and performance (observe/provider_health.py, observe/performance.py)
    health_probe_interval: float = setting(15.0, _parse_probe_interval, "Seconds between active health probes "
                                           "of a provider (0: none, else 0.1-86400; a provider's "
                                           "health_check.interval overrides).")
    health_probe_timeout: float = setting(2.0, _parse_probe_timeout, "Seconds a health probe may take before it "
                                          "counts as failed (at most 60).")
    ready_min_healthy_providers: int = setting(0, _parse_non_negative_int, "Healthy providers /ready requires "
                                               "(0: one ready provider, as without health checks).")
    performance: bool = setting(True, parse_bool, "Measure each model's latency, time to first token, tokens "
                                "per second and success rate (the performance block of /v1/models).")
    performance_window: float = setting(300.0, _parse_window, "Seconds of traffic the performance block covers "
                                        "(10-86400).")
    # Traces and logs (observe/tracing.py, observe/request_log.py)
    otlp_endpoint: str | None = setting(None, _parse_http_url, "OTLP/HTTP endpoint to export traces to (its base "
                                        "URL; /v1/traces is appended). OTEL_EXPORTER_OTLP_ENDPOINT and "
                                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT work too; none set: no tracing.")
    log_format: str = setting("text", _parse_log_format, "Log lines as `text` (for people) or `json` (one JSON "
                              "object per line, every logger's).")
    request_log: bool = setting(False, parse_bool, "Log one line per generation/embeddings request (logger "
                                "parrotrouter.requests, level INFO) once its tokens and cost are final.")
    # Model discovery (discovery/): providers' GET /models, served by their ids
    discover_models: str = setting("auto", _parse_discover_models, "Providers whose models are listed from their "
                                   "GET /models: auto (local servers, a custom OPENAI_BASE_URL, OpenAI's "
                                   "fine-tuned models, OpenRouter, config providers with discover: true), none, "
                                   "or provider names separated by commas.")
    discovery_interval: float = setting(300.0, _parse_discovery_interval, "Seconds between model discoveries "
                                        "(0: at start only, else 5-86400).")
    discovery_timeout: float = setting(5.0, _parse_discovery_timeout, "Seconds one discovery request may take; "
                                       "start-up waits at most this long for the first lists.")

    @functools.cached_property
    def limit_defaults(self) -> Defaults:  # asked on every request: built once
        from .ratelimit.rules import Defaults

        return Defaults(rpm=self.rate_limit_rpm, rpd=self.rate_limit_rpd, tpm=self.rate_limit_tpm,
                        user_rpm=self.user_rate_limit_rpm, user_tpm=self.user_rate_limit_tpm)

    def with_overrides(self, **values: Any) -> Settings:
        return dataclasses.replace(self, **values)


def _declared(field: dataclasses.Field[Any]) -> Setting:
    parse, help, shown, cli, flag = field.metadata["setting"]
    return Setting(field.name, parse, field.default, help, shown, cli, flag)


REGISTRY: tuple[Setting, ...] = tuple(_declared(f) for f in dataclasses.fields(Settings))
_BY_NAME = {s.name: s for s in REGISTRY}


def _referenced(ref: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """The value a file setting names by reference: `{$env: NAME}` or `{$file: PATH}` (as secrets in
    `providers:` are given), so a secret such as the master key or a database URL stays out of the file."""
    if len(ref) != 1 or not isinstance(next(iter(ref.values())), str) or next(iter(ref)) not in ("$env", "$file"):
        raise ValueError("a value given by reference is {$env: VARIABLE_NAME} or {$file: PATH}")
    kind, name = next(iter(ref.items()))
    if kind == "$env":
        value = env.get(name)
        if not value:
            raise ValueError(f"environment variable {name} is not set")
        return value
    try:
        return Path(os.path.expanduser(name)).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {name}: {exc}") from None


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
            if isinstance(raw, Mapping):  # a reference, e.g. `master_key: {$env: NAME}`
                try:
                    raw = _referenced(raw, env)
                except ValueError as exc:
                    problems.append(f"{where}: {exc}")
                    continue
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


def markdown_table() -> str:
    """The README's settings table (tests/unit/test_settings.py checks the README holds it)."""
    rows = ["| setting | environment | `serve` option | default | |", "|---|---|---|---|---|"]
    for s in REGISTRY:
        option = (f"`{s.option}/--no-{s.option[2:]}`" if s.flag else f"`{s.option}`") if s.cli else ""
        rows.append(f"| `{s.name}` | `{s.env}` | {option} | {s.shown_default} | {s.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m parrotrouter.settings: print the README table
    print(markdown_table(), end="")
