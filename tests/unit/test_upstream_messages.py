"""Upstream error messages: a client error's message is passed on redacted and bounded, server and
credential errors are not passed on, and the original is logged. Realistic provider bodies go
through each adapter's `error()` (pure: no I/O)."""

from __future__ import annotations

import logging

import orjson
import pytest

from parrotrouter.catalog import ProviderSpec
from parrotrouter.errors import FailureKind
from parrotrouter.providers.anthropic import AnthropicAdapter, AnthropicStream
from parrotrouter.providers.gemini import GeminiAdapter
from parrotrouter.providers.openai_compat import OpenAIAdapter
from parrotrouter.providers.redact import MESSAGE_LIMIT, redact
from parrotrouter.upstream.client import ServerSentEvent

SECRETS = ("org-", "sk-", "AIza", "/srv/", "10.20.30.40", "@", "8f3c2b1a", "123456789012", "googleapis",
           "platform.openai.com", "vllm.prod", "C:\\")


def openai() -> OpenAIAdapter:
    return OpenAIAdapter(ProviderSpec(name="openai", type="openai", display_name="OpenAI",
                                      base_url="https://api.openai.com/v1"))


def anthropic() -> AnthropicAdapter:
    return AnthropicAdapter(ProviderSpec(name="anthropic", type="anthropic", display_name="Anthropic",
                                         base_url="https://api.anthropic.com"))


def gemini() -> GeminiAdapter:
    return GeminiAdapter(ProviderSpec(name="gemini", type="gemini", display_name="Gemini",
                                      base_url="https://generativelanguage.googleapis.com/v1beta"))


def assert_clean(message: str) -> None:
    for secret in SECRETS:
        assert secret not in message, (secret, message)


@pytest.mark.parametrize(("text", "kept", "placeholder"), [
    ("Rate limit reached for gpt-4o in organization org-abc123XYZ on tokens per min (TPM): Limit 30000, "
     "Used 29000, Requested 2000. Please try again in 2s. Visit https://platform.openai.com/account/rate-limits "
     "to learn more.", "Limit 30000, Used 29000, Requested 2000", "[redacted id]"),
    ("Incorrect API key provided: sk-proj-abc1****************wxyz. You can find your API key at "
     "https://platform.openai.com/account/api-keys.", "Incorrect API key provided", "[redacted key]"),
    ("invalid x-api-key sk-ant-api03-AbCdEf123456-XyZ", "invalid x-api-key", "[redacted key]"),
    ("API key not valid. Please pass a valid API key. AIzaSyA-1234567890abcdefghijklmnopqrs",
     "API key not valid", "[redacted key]"),
    ("Generative Language API has not been used in project 123456789012 before or it is disabled. Enable it "
     "by visiting https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/overview"
     "?project=123456789012 then retry.", "has not been used in project", "[url]"),
    ("Your credit balance is too low. Organization 8f3c2b1a-1234-4abc-9def-0123456789ab, "
     "billing contact ops@corp.example.com", "credit balance is too low", "[email]"),
    ("FileNotFoundError: [Errno 2] No such file or directory: '/srv/app/keys.py'", "No such file", "[path]"),
    ("Could not open C:\\Users\\svc\\keys.txt", "Could not open", "[path]"),
    ("upstream vllm.prod.internal:8000 (10.20.30.40:8000) refused; also tried vllm.prod.example.com",
     "refused; also tried", "[host]"),
    ("Authorization: Bearer abc.def.ghi rejected", "rejected", "Bearer [redacted]"),
    ("The provided model identifier is invalid: arn:aws:bedrock:us-east-1:123456789012:application-inference-"
     "profile/a1b2c3", "model identifier is invalid", "[redacted arn]"),
    ("User: 123456789012 is not authorized to perform: bedrock:InvokeModel", "is not authorized", "[redacted id]"),
])
def test_redact_keeps_the_point_and_drops_the_secrets(text: str, kept: str, placeholder: str) -> None:
    out = redact(text)
    assert kept in out and placeholder in out, out
    assert_clean(out)


@pytest.mark.parametrize("text", [
    "max_tokens: 10000000 > 8192, which is the maximum allowed number of output tokens for claude-3-5-haiku-20241022",
    "messages.1.content.0.image.source.base64: The image was specified using the image/jpeg media type",
    "This model's maximum context length is 128000 tokens. However, your messages resulted in 200000 tokens.",
    "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that matches the "
    "pattern '^[a-zA-Z0-9_-]+$'. Retry at 12:30:45 and/or lower top_p to 1/2.",
])
def test_redact_leaves_ordinary_messages_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_bounds_any_input() -> None:
    for text in ("x" * 1_000_000, "a." * 500_000, "a-b " * 250_000, "\x00\n" * 10_000):
        out = redact(text)
        assert len(out) <= MESSAGE_LIMIT + 40 and "\x00" not in out and "\n" not in out


def test_openai_client_error_is_passed_on_redacted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    body = {"error": {"message": "Invalid 'temperature': must be at most 2. Request rejected for organization "
                                 "org-abc123 using key sk-proj-abc1****wxyz; see /srv/app/keys.py",
                      "type": "invalid_request_error", "param": "temperature", "code": None}}
    with caplog.at_level(logging.WARNING, logger="parrotrouter.providers"):
        failure = openai().error(400, {}, orjson.dumps(body))
    assert failure.kind is FailureKind.BAD_REQUEST
    assert "Invalid 'temperature': must be at most 2." in failure.message
    assert_clean(failure.message)
    assert "org-abc123" in caplog.text and "/srv/app/keys.py" in caplog.text and "openai" in caplog.text


@pytest.mark.parametrize(("status", "body", "kind"), [
    (401, {"error": {"message": "Incorrect API key provided: sk-upstr*****cret.", "type": "invalid_request_error",
                     "code": "invalid_api_key"}}, FailureKind.AUTH),
    (500, {"error": {"message": "Traceback: File /srv/app/engine.py, line 3 on 10.20.30.40",
                     "type": "server_error"}}, FailureKind.SERVER_ERROR),
    (503, {"error": {"message": "The engine is currently overloaded (host vllm.prod.internal)",
                     "type": "server_error"}}, FailureKind.MODEL_OVERLOADED),
])
def test_credential_and_server_errors_say_nothing_of_the_upstream(status: int, body: dict[str, object],
                                                                  kind: FailureKind) -> None:
    failure = openai().error(status, {}, orjson.dumps(body))
    assert failure.kind is kind
    assert failure.message.startswith("The provider 'openai'") and f"HTTP {status}" in failure.message
    assert ":" not in failure.message.split(")", 1)[1], failure.message
    assert_clean(failure.message)


def test_anthropic_errors_by_type() -> None:
    body = {"type": "error", "error": {"type": "invalid_request_error",
                                       "message": "messages.0.content: organization 8f3c2b1a-1234-4abc-9def-"
                                                  "0123456789ab may not use this model; key sk-ant-api03-Xy12"}}
    failure = anthropic().error(400, {}, orjson.dumps(body))
    assert failure.kind is FailureKind.BAD_REQUEST and "messages.0.content" in failure.message
    assert_clean(failure.message)
    auth = anthropic().error(401, {}, orjson.dumps({"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key sk-ant-api03-Xy12"}}))
    assert auth.kind is FailureKind.AUTH and "x-api-key" not in auth.message


def test_anthropic_mid_stream_error_is_redacted() -> None:
    stream = AnthropicStream("anthropic")
    event = ServerSentEvent(event="error", data=orjson.dumps({"type": "error", "error": {
        "type": "rate_limit_error", "message": "Rate limited for organization 8f3c2b1a-1234-4abc-9def-0123456789ab"}}
    ).decode())
    with pytest.raises(Exception) as info:
        stream.feed(event)
    message = str(info.value)
    assert "Rate limited for organization" in message and "[redacted id]" in message
    assert_clean(message)


def test_gemini_errors_by_status() -> None:
    body = [{"error": {"code": 400, "status": "INVALID_ARGUMENT",
                       "message": "API key not valid. Please pass a valid API key. AIzaSyA-1234567890abcdefghijk"}}]
    failure = gemini().error(400, {}, orjson.dumps(body))
    assert failure.kind is FailureKind.BAD_REQUEST and "API key not valid" in failure.message
    assert_clean(failure.message)
    denied = gemini().error(403, {}, orjson.dumps({"error": {
        "code": 403, "status": "PERMISSION_DENIED",
        "message": "Generative Language API has not been used in project 123456789012 before"}}))
    assert denied.kind is FailureKind.AUTH and "123456789012" not in denied.message


def test_a_huge_upstream_message_is_bounded() -> None:
    body = {"error": {"message": "bad request " + "x" * 5_000_000, "type": "invalid_request_error"}}
    failure = openai().error(400, {}, orjson.dumps(body))
    assert len(failure.message) < 700
