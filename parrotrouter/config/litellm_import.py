"""`parrotrouter config import-litellm`: read a LiteLLM proxy `config.yaml`, convert it
(litellm_convert.py), check the result as `serve` would read it, write it and the report.

Secrets are never copied: `os.environ/NAME` becomes `{$env: NAME}`, and an inline secret becomes a
reference to a variable the report names. The input is untrusted: its size is capped, YAML is read
with `safe_load`, aliases may not expand it beyond a bound, and a wrong type is an error naming its
place in the file (exit status 2).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .litellm_convert import convert
from .litellm_report import Conversion, Finding

MAX_BYTES = 1 << 20  # a LiteLLM config is a few KB; 1 MiB is generous
MAX_VALUES = 100_000  # values in the document once aliases are expanded (a "YAML bomb" is refused)


def read_litellm_file(path: str) -> Any:
    """The YAML document of a LiteLLM config, bounded (ConfigError for anything unreadable)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"cannot read file: {exc.strerror or exc}"], path) from None
    if len(data) > MAX_BYTES:
        raise ConfigError([f"larger than {MAX_BYTES} bytes: not a LiteLLM config file"], path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(["not UTF-8 text"], path) from None
    return parse_litellm_text(text, path)


def parse_litellm_text(text: str, source: str = "LiteLLM config") -> Any:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}invalid YAML: {getattr(exc, 'problem', None) or exc}"], source) from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. a date 2024-13-45, nesting too deep
        raise ConfigError([f"invalid YAML: {type(exc).__name__}: {str(exc)[:200]}"], source) from None
    _bounded(doc, source)
    return doc


def _bounded(doc: Any, source: str) -> None:
    """Refuse a document with more than MAX_VALUES values once aliases are expanded (and so any
    recursive one), walking at most that many."""
    stack, seen = [doc], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError([f"more than {MAX_VALUES} values once YAML aliases are expanded: refused"], source)
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def import_litellm_file(path: str) -> Conversion:
    """Read and convert a LiteLLM proxy config file (ConfigError listing every problem)."""
    return convert(read_litellm_file(path), path)


def check_converted(text: str) -> None:
    """Validate a converted file as `serve` would read it (ConfigError when it does not validate)."""
    from .loader import read_config_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "parrotrouter.yaml"
        path.write_text(text, encoding="utf-8")
        read_config_file(str(path))


def write_conversion(source: str, output: str | None, err: Callable[[str], None], out: Callable[[str], None]) -> int:
    """The `config import-litellm` command: convert, check, write; the exit status (2: bad input)."""
    if output is not None and Path(output).resolve() == Path(source).resolve():
        err("parrotrouter: the output would overwrite the LiteLLM config; choose another file")
        return 2
    try:
        conversion = import_litellm_file(source)
    except ConfigError as exc:
        err(exc.render())
        return 2
    text = conversion.render()
    try:
        check_converted(text)
    except ConfigError as exc:  # a bug of the converter, never of the input
        err("parrotrouter: the converted configuration does not validate (please report this):")
        err(exc.render())
        return 1
    if output is None:
        out(text)
    else:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            err(f"parrotrouter: cannot write {output}: {exc.strerror or exc}")
            return 1
    for line in conversion.report():
        err(line)
    models, providers = len(conversion.config["models"]), len(conversion.config["providers"])
    err(f"{source}: {models} model(s) on {providers} provider(s)" + (f", written to {output}" if output else ""))
    return 0


__all__ = ["MAX_BYTES", "MAX_VALUES", "Conversion", "Finding", "check_converted", "convert", "import_litellm_file",
           "parse_litellm_text", "read_litellm_file", "write_conversion"]
