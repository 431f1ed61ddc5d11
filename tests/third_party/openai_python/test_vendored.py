"""The vendored openai-python files are byte-identical to the release they come from (SHA256SUMS,
README.md), and that release is the installed SDK (their tests follow its types)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import openai

HERE = Path(__file__).resolve().parent
VERSION = "3.63.0"


def test_vendored_files_are_unchanged() -> None:
    for line in (HERE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((HERE / name).read_bytes()).hexdigest() == digest, f"{name} differs from openai {VERSION}"


def test_the_installed_sdk_is_the_vendored_release() -> None:
    assert openai.__version__ == VERSION, "refresh tests/third_party/openai_python (README.md) with the SDK"
