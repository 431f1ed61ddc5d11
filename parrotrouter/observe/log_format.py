"""How log lines look: `text` for people (the default) or `json` (one JSON object per line, for
every logger of the process, ours and libraries', through `JsonFormatter`).

A structured line (`Fields`, e.g. the request log's) renders as `event key=value ...` in text, each
value a bare word or a JSON string, so a value a caller chose (a request id, a model name) can
neither split the line nor fake a field; in JSON its fields are keys of the line's object.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Mapping
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
# The keys every JSON line has: a structured line's fields never replace them.
RESERVED = frozenset({"time", "level", "logger", "process", "message", "exception", "stack"})


def bare(text: str) -> bool:
    """Whether a text value is shown as is: printable ASCII without a space, quote, backslash or
    `=` (anything else is quoted, so it can neither end the line nor start a field)."""
    return (text.isascii() and text.isprintable() and text != "" and " " not in text and '"' not in text
            and "=" not in text and "\\" not in text)


class Fields:
    """A log message made of named fields, rendered by the formatter (only when it is emitted)."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: Mapping[str, Any]) -> None:
        self.event = event
        self.fields = fields

    def __str__(self) -> str:
        parts = [self.event]
        for key, value in self.fields.items():
            kind = value.__class__
            if kind is str:  # the common cases inline: a request line has two dozen fields
                parts.append(f"{key}={value}" if bare(value) else f"{key}={json.dumps(value)}")
            elif kind is int or kind is float:
                parts.append(f"{key}={value!r}")
            elif value is not None:
                parts.append(f"{key}={text_value(value)}")
        return " ".join(parts)


def text_value(value: Any) -> str:
    """One value of a text line: a bare word, else a JSON string (newlines and quotes escaped)."""
    kind = value.__class__
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return repr(value)
    text = ",".join(map(str, value)) if kind is list or kind is tuple else str(value)
    if bare(text):
        return text
    return json.dumps(text)  # ASCII only: every control or non-ASCII character escaped


class JsonFormatter(logging.Formatter):
    """Every log record as one JSON object: time, level, logger, process, message, the fields of
    a structured message, and the exception's traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
        }
        msg = record.msg
        if isinstance(msg, Fields):
            line["message"] = msg.event
            for key, value in msg.fields.items():
                if key not in RESERVED:
                    line[key] = value
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(line, default=str).decode()
        except TypeError:  # e.g. a lone surrogate: a header's non-UTF-8 bytes, as aiohttp decodes them
            return json.dumps(line, default=str)  # ASCII only: a surrogate becomes a \udcXX escape


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of the `log_format` setting."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
