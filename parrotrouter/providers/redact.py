"""An upstream's error message as a client may read it: what the provider said about the request,
minus what it said about the gateway's own account and hosts.

Provider messages quote credentials (`Incorrect API key provided: sk-proj-****abcd`), organisation
and project ids (`... in organization org-XXXX on tokens per min`), console URLs with project
numbers, e-mail addresses, and, from self-hosted servers, file paths and internal host names. The
caller needs the rest (which parameter is wrong, which limit was hit); the original goes to the log.
Runs on the error path only, word by word (words of bounded length), so that no pattern ever
backtracks over a long input.
"""

from __future__ import annotations

import re

from ..errors import echo

MESSAGE_LIMIT = 500  # characters of an upstream message a client is shown
_SCAN_LIMIT = 2000  # characters of it that are looked at (an upstream may send megabytes)
_WORD_LIMIT = 120  # a longer word (no spaces) is no message a client needs: replaced whole


def _rules(*rules: tuple[str, str]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(pattern, re.IGNORECASE), replacement) for pattern, replacement in rules)


# Applied to the whole text first: URLs (which may hold the others) and secrets that span a space.
_SPANNING = _rules(
    (r"\b[a-z][a-z0-9+.-]{0,15}://[^\s'\"<>`]+", "[url]"),
    (r"\bbearer\s+[^\s'\"]+", "Bearer [redacted]"),
    (r"\bprojects?(?:/|\s+|=|:\s*)\d{4,}", "project [redacted id]"),
)
# Then word by word. Order matters: e-mail addresses before the host names in them.
_WORD_RULES = _rules(
    (r"[\w.+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+", "[email]"),
    # API keys: OpenAI-style (also masked ones, `sk-upstr*****cret`; Anthropic's sk-ant-...),
    # Google's, ours, Groq's, xAI's, Hugging Face's, and key-... tokens.
    (r"\b(?:sk|rk|pk)-[\w*.-]{3,}[\w*]", "[redacted key]"),
    (r"\b(?:pr|xai|gsk|hf)[-_][\w*.-]{15,}[\w*]", "[redacted key]"),
    (r"\bkey-[\w*]{8,}", "[redacted key]"),
    (r"\bAIza[\w*-]{8,}", "[redacted key]"),
    # Account ids: OpenAI organisations and projects, UUIDs (Anthropic organisations), Google
    # project numbers.
    (r"\b(?:org-|proj_)(?=[a-z0-9*]*\d)[a-z0-9*]{6,}\b", "[redacted id]"),
    (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "[redacted id]"),
    # AWS resource names (they hold the account id) and bare 12-digit account ids.
    (r"\barn:aws[\w-]*:[^\s'\"]+", "[redacted arn]"),
    (r"(?<![\w.])\d{12}(?![\w.])", "[redacted id]"),
    # IPv4 and IPv6 addresses (IPv6: with `::` or at least four groups, so times do not match).
    (r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b", "[address]"),
    (r"(?<![\w:])(?=[0-9a-f:]*::|(?:[0-9a-f]{1,4}:){3})[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![\w:])",
     "[address]"),
    # Internal host names, and fully qualified ones of three or more labels (vllm.prod.example.com).
    (r"\b(?:localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:internal|local|localdomain|lan|corp|intranet|svc|"
     r"home\.arpa))(?::\d+)?\b", "[host]"),
    # (Public suffixes listed, so that parameter paths such as `messages.1.content.0.source` stay.)
    (r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)+\.(?:com|net|org|io|ai|dev|app|cloud|co|sh|me|tech|xyz|info|biz|run|"
     r"us|uk|de|fr|eu|nl|ch|jp|cn|in|ca|au)(?::\d+)?\b", "[host]"),
    # Absolute file paths: POSIX with two components or more, home-relative, Windows.
    (r"(?<![\w.:/-])(?:~|/[\w.@+-]+)(?:/[\w.@+-]+)+/?", "[path]"),
    (r"\b[a-z]:\\[^\s'\"]+", "[path]"),
    # Long opaque tokens (secrets, ids of the gateway's account): letters and digits mixed.
    (r"\b(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]{32,}\b", "[redacted]"),
)


def redact(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """`message` with credentials, account ids, addresses, host names, paths and e-mail addresses
    replaced by placeholders, whitespace collapsed, cut to `limit` characters."""
    text = message[:_SCAN_LIMIT]
    if not text.isprintable():  # control characters (newlines too) become spaces
        text = "".join(c if c.isprintable() else " " for c in text)
    for pattern, replacement in _SPANNING:
        text = pattern.sub(replacement, text)
    return echo(" ".join(_redact_word(word) for word in text.split()), limit)


def _redact_word(word: str) -> str:
    if len(word) > _WORD_LIMIT:
        return "[redacted]"
    for pattern, replacement in _WORD_RULES:
        word = pattern.sub(replacement, word)
    return word
