"""Local servers enabled from the environment: their URL variables, normalised.

`OLLAMA_HOST` is Ollama's own variable and comes in every form its users write (`127.0.0.1:11434`,
`0.0.0.0`, `:11434`, `http://host:port`, `https://host`); the other servers' variables are URLs,
given with or without the `/v1` of their OpenAI-compatible API.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..catalog import ProviderSpec
from ..providers.presets import Preset
from ..settings import Secret

OLLAMA_PORT = 11434
log = logging.getLogger("parrotrouter.discovery")
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # where Ollama listens -> where to connect


def _host(host: str) -> str:
    host = _ANY.get(host, host)
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def ollama_root(value: str) -> str | None:
    """OLLAMA_HOST as a URL (scheme://host:port, no path); None when it cannot be one."""
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "http", text
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        return None
    default_port = OLLAMA_PORT if not sep else {"http": 80, "https": 443}[scheme]
    hostport = rest.split("/", 1)[0]
    try:
        parts = urlsplit(f"//{hostport}")
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return None
    if hostport.startswith(":") and port is None:
        return None
    port = port if port is not None else default_port
    if any(c.isspace() for c in host) or "@" in hostport:
        return None
    return f"{scheme}://{_host(host)}:{port}"


def openai_base(value: str) -> str | None:
    """A server URL as its OpenAI-compatible base (`.../v1`); None when it is not an http(s) URL."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    return url if url.endswith("/v1") else url + "/v1"


def root_of(base_url: str) -> str:
    """The server's root from its OpenAI-compatible base (native APIs live at the root)."""
    return base_url[:-3] if base_url.endswith("/v1") else base_url


def local_provider(preset: Preset, env: Mapping[str, str]) -> ProviderSpec | None:
    """The local server's provider when one of the preset's URL variables is set (a key optional)."""
    raw = next((env[name] for name in preset.url_envs if env.get(name, "").strip()), None)
    if raw is None:
        return None
    if preset.discover == "ollama":
        root = ollama_root(raw)
        base = root + "/v1" if root else None
    else:
        base = openai_base(raw)
    if base is None:
        log.warning("%s: %s is not a server URL; %s is not enabled", preset.display_name,
                    next(n for n in preset.url_envs if env.get(n, "").strip()), preset.name)
        return None
    key = next((env[k] for k in preset.key_envs if env.get(k)), None)
    return ProviderSpec(name=preset.name, type=preset.type, display_name=preset.display_name, base_url=base,
                        api_key=Secret(key) if key else None, drop_params=preset.drop_params)
