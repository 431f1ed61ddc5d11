"""The report of `config import-litellm`: what could not be mapped (`Finding`), grouped by level,
printed on stderr and written as comments at the top of the converted file (`Conversion`)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from .litellm_providers import Level

# A LiteLLM config's top-level sections, in the order the report follows.
TOP_SECTIONS = ("model_list", "credential_list", "router_settings", "litellm_settings", "general_settings",
                "environment_variables")
_HEADINGS = {"action": "To do before use", "unmapped": "Not mapped", "note": "Mapped, with a difference"}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing the report says: where in the LiteLLM file, and what."""

    level: Level  # action: the user must do something; unmapped: dropped; note: mapped approximately
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Conversion:
    config: dict[str, Any]  # our configuration file's contents
    findings: tuple[Finding, ...]
    source: str

    def report(self) -> list[str]:
        """The findings as lines, grouped by level (the same lines head the output as comments)."""
        lines: list[str] = []
        for level, heading in _HEADINGS.items():
            found = sorted((f for f in self.findings if f.level == level), key=_position)
            if found:
                lines.append(f"{heading} ({len(found)}):")
                lines += [f"  - {f}" for f in found]
        return lines

    def render(self) -> str:
        """The YAML text of our configuration, the report as comments at its top."""
        head = [f"ParrotRouter configuration converted from the LiteLLM config {printable(Path(self.source).name)}",
                "by `parrotrouter config import-litellm`. Check it with `parrotrouter config check`."]
        lines = [*head, *self.report()] if self.findings else [*head, "Everything was mapped."]
        comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in lines)
        body = yaml.safe_dump(self.config, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)
        return comments + "\n" + body


def _position(finding: Finding) -> tuple[int, int]:
    """Where a finding is in the file, roughly: its section, then its model_list entry."""
    entry = re.match(r"model_list\[(\d+)\]", finding.where)
    section = re.split(r"[.\[/]", finding.where, maxsplit=1)[0]
    order = TOP_SECTIONS.index(section) if section in TOP_SECTIONS else len(TOP_SECTIONS)
    return order, int(entry.group(1)) if entry else 0


def printable(text: str) -> str:
    """Text from the input, safe in a comment line and on a terminal (no newline, no control)."""
    return "".join(c if c.isprintable() else "?" for c in text)
