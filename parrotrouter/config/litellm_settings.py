"""LiteLLM's `router_settings`, `litellm_settings` and `general_settings`, as our `server:` settings
(`config import-litellm`); what has no equivalent is reported."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .litellm_providers import ENV_PREFIX, MAX_SECONDS, is_env_ref

if TYPE_CHECKING:
    from .litellm_convert import Converter

_STRATEGIES = {"simple-shuffle": "weighted", "least-busy": "least-busy", "latency-based-routing": "latency",
               "cost-based-routing": "cost"}
_FALLBACKS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks")
_FALLBACK_HINT = ("no cross-model fallback in the config file: a request lists its fallback models itself "
                  "(`models: [...]`, or X-Failover-Config); several deployments of one model fail over by themselves")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def read_router(conv: Converter, router: Mapping[str, Any]) -> None:
    for key, value in router.items():
        where = f"router_settings.{key}"
        if value is None:
            continue
        if key == "routing_strategy":
            _strategy(conv, value, where)
        elif key == "model_group_alias":
            _aliases(conv, value, where)
        elif key == "num_retries":
            _retries(conv, value, where)
        elif key == "timeout":
            _seconds(conv, value, where, "request_timeout")
        elif key == "allowed_fails":
            _allowed_fails(conv, value, where)
        elif key == "cooldown_time":
            _seconds(conv, value, where, "breaker_cooldown")
        elif key in _FALLBACKS:
            conv.found("unmapped", where, _FALLBACK_HINT)
        elif key in ("redis_host", "redis_port", "redis_password", "redis_url"):
            continue  # below, together
        else:
            conv.found("unmapped", where, "no equivalent router setting")
    _redis(conv, router)


def read_litellm_settings(conv: Converter, settings: Mapping[str, Any], router: Mapping[str, Any]) -> None:
    for key, value in settings.items():
        where = f"litellm_settings.{key}"
        if value is None:
            continue
        if key == "num_retries" and router.get("num_retries") is None:
            _retries(conv, value, where)
        elif key == "request_timeout" and router.get("timeout") is None:
            _seconds(conv, value, where, "request_timeout")
        elif key == "allowed_fails" and router.get("allowed_fails") is None:
            _allowed_fails(conv, value, where)
        elif key == "cooldown_time" and router.get("cooldown_time") is None:
            _seconds(conv, value, where, "breaker_cooldown")
        elif key in ("num_retries", "request_timeout", "allowed_fails", "cooldown_time"):
            conv.found("note", where, "router_settings gives it too; that one is used")
        elif key == "drop_params":
            conv.found("note", where, "ParrotRouter always drops the parameters a provider does not take (per "
                       "provider) and translates the rest; nothing to set")
        elif key in ("set_verbose", "json_logs"):
            if not isinstance(value, bool):
                conv.problem(where, "must be true or false")
            elif value and key == "set_verbose":
                conv.server["log_level"] = "debug"
            elif value:
                conv.server["log_format"] = "json"
        elif key in ("callbacks", "success_callback", "failure_callback", "service_callback"):
            conv.found("unmapped", where, "callbacks have no equivalent: ParrotRouter has Prometheus /metrics (on by "
                       "default), OpenTelemetry traces (otlp_endpoint) and a request log (request_log)")
        elif key in ("cache", "cache_params"):
            conv.found("unmapped", where, "ParrotRouter has no response cache")
        elif key in _FALLBACKS:
            conv.found("unmapped", where, _FALLBACK_HINT)
        else:
            conv.found("unmapped", where, "no equivalent setting")


def read_general(conv: Converter, general: Mapping[str, Any]) -> None:
    for key, value in general.items():
        where = f"general_settings.{key}"
        if value is None:
            continue
        if key == "master_key":
            _master_key(conv, value, where)
        elif key == "database_url":
            _database_url(conv, value, where)
        else:
            conv.found("unmapped", where, "no equivalent setting")


def _strategy(conv: Converter, value: Any, where: str) -> None:
    if not isinstance(value, str):
        conv.problem(where, "must be a string")
        return
    ours = _STRATEGIES.get(value)
    if ours is None:
        conv.found("unmapped", where, f"'{value[:60]}' has no equivalent (ParrotRouter's strategies: weighted, "
                   "least-busy, latency, cost, priority); models keep the default, weighted")
        return
    conv.server_strategy = ours
    if ours != "weighted":
        conv.found("note", where, f"became `strategy: {ours}` on every model with more than one deployment")


def _aliases(conv: Converter, value: Any, where: str) -> None:
    aliases = conv.mapping(value, where)
    for alias, target in (aliases or {}).items():
        if isinstance(target, Mapping):
            if target.get("hidden"):
                conv.found("note", f"{where}.{alias}", "hidden aliases are not hidden: /v1/models lists a model's "
                           "aliases")
            target = target.get("model")
        name = target if isinstance(target, str) else None
        if conv.name(alias, f"{where}.{alias}") is None:
            continue
        if name is None:
            conv.problem(f"{where}.{alias}", "must name a model_name")
        elif name not in conv.models:
            conv.found("unmapped", f"{where}.{alias}", f"'{name[:80]}' is not a model of model_list")
        elif alias in conv.models:
            conv.found("unmapped", f"{where}.{alias}", f"'{alias[:80]}' is itself a model of model_list")
        else:
            conv.models[name].aliases.append(alias)


def _int(conv: Converter, value: Any, where: str) -> int | None:
    if is_env_ref(value):
        conv.found("unmapped", where, "a number read from the environment: write it into server: by hand")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        conv.problem(where, "must be a whole number, 0 or more")
        return None
    return value


def _allowed_fails(conv: Converter, value: Any, where: str) -> None:
    count = _int(conv, value, where)
    if count is not None:
        conv.server["breaker_failure_threshold"] = max(1, count)
        conv.found("note", where, "became breaker_failure_threshold: failures in a row open a deployment's "
                   "breaker (LiteLLM counts failures per minute)")


def _retries(conv: Converter, value: Any, where: str) -> None:
    retries = _int(conv, value, where)
    if retries is not None:
        conv.server["max_attempts"] = min(100, retries + 1)
        conv.found("note", where, f"became max_attempts: {conv.server['max_attempts']} (upstream calls per "
                   "request, retries and failovers to other deployments included)")


def _seconds(conv: Converter, value: Any, where: str, setting: str) -> None:
    if is_env_ref(value):
        conv.found("unmapped", where, f"a number read from the environment: set {setting} by hand")
        return
    seconds = conv.number(value, where, positive=True, maximum=MAX_SECONDS)
    if seconds is not None:
        conv.server[setting] = int(seconds) if seconds.is_integer() else seconds


def _redis(conv: Converter, router: Mapping[str, Any]) -> None:
    """redis_url, or redis_host/port/password, as our redis_url (a password is never copied)."""
    given = {k: router[k] for k in ("redis_url", "redis_host", "redis_port", "redis_password")
             if router.get(k) is not None}
    if not given:
        return
    where = "router_settings." + "/".join(given)
    url = given.get("redis_url")
    if isinstance(url, str) and is_env_ref(url):
        conv.server["redis_url"] = {"$env": url[len(ENV_PREFIX):]}
        return
    if isinstance(url, str):
        if urlsplit(url).password:
            conv.server["redis_url"] = {"$env": "REDIS_URL"}
            conv.found("action", where, "the URL holds a password and is not copied: set REDIS_URL to it")
        else:
            conv.server["redis_url"] = url
        return
    host, port, password = given.get("redis_host"), given.get("redis_port", 6379), given.get("redis_password")
    literal = isinstance(host, str) and not is_env_ref(host) and (
        isinstance(port, int) or (isinstance(port, str) and port.isdigit()))
    if literal and password is None:
        conv.server["redis_url"] = f"redis://{host}:{port}"
        return
    secret = "" if password is None else f":{_shown(password, '<password>')}@"
    conv.server["redis_url"] = {"$env": "REDIS_URL"}
    conv.found("action", where, f"set REDIS_URL to redis://{secret}{_shown(host, '<host>')}:{_shown(port, '<port>')}"
               " (a password is not copied into the file)")


def _shown(value: Any, placeholder: str) -> str:
    """A Redis URL part as the report shows it: `$VAR` for a reference, the placeholder for a
    password or a value that is not a plain string or number."""
    if is_env_ref(value):
        return "$" + str(value)[len(ENV_PREFIX):]
    if placeholder == "<password>" or isinstance(value, bool) or not isinstance(value, (str, int)):
        return placeholder
    return str(value)


def _master_key(conv: Converter, value: Any, where: str) -> None:
    if is_env_ref(value):
        name = value[len(ENV_PREFIX):]
        if not _ENV_NAME.fullmatch(name):
            conv.problem(where, "names no valid environment variable")
            return
        conv.server["master_key"] = {"$env": name}
        return
    if not isinstance(value, str):
        conv.problem(where, "must be a string")
        return
    conv.server["master_key"] = {"$env": "LITELLM_MASTER_KEY"}
    conv.found("action", where, "the master key was written in the file and is not copied: set LITELLM_MASTER_KEY "
               "to it (or to a new key). Keys made by LiteLLM (virtual keys) are not migrated: make them with "
               "`parrotrouter keys create`")


def _database_url(conv: Converter, value: Any, where: str) -> None:
    note = ("ParrotRouter keeps its own tables (keys, credits, usage); LiteLLM's keys, teams and spend are not "
            "migrated — a database of its own is safest")
    if is_env_ref(value):
        name = value[len(ENV_PREFIX):]
        if not _ENV_NAME.fullmatch(name):
            conv.problem(where, "names no valid environment variable")
            return
        conv.server["database_url"] = {"$env": name}
        conv.found("note", where, note)
        return
    if not isinstance(value, str):
        conv.problem(where, "must be a string")
        return
    if not value.startswith(("postgres://", "postgresql://")):
        conv.found("unmapped", where, "only a PostgreSQL URL is mapped")
        return
    if urlsplit(value).password:
        conv.server["database_url"] = {"$env": "DATABASE_URL"}
        conv.found("action", where, f"the URL holds a password and is not copied: set DATABASE_URL to it. {note}")
    else:
        conv.server["database_url"] = value
        conv.found("note", where, note)
