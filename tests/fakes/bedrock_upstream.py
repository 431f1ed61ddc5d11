"""A fake Amazon Bedrock runtime (Converse, ConverseStream) speaking the documented wire format.

- `POST /model/{modelId}/converse` answers rest-json; `.../converse-stream` answers
  `application/vnd.amazon.eventstream`: binary messages built here from the documented layout
  (prelude of total and headers length, prelude CRC32, string headers, JSON payload, message
  CRC32), which the gateway decodes with botocore's decoder.
- Errors as the service sends them: the status, `x-amzn-ErrorType: <Type>:<namespace>` and
  `{"message": ...}`; stream failures as exception messages after HTTP 200.
- Every request's SigV4 signature is checked by signing it again with botocore and the known
  test credentials (an `Authorization: Bearer` Bedrock API key is checked as such).

The model id picks the scenario: `fake.<scenario>-v1:0`; any other id (an inference profile, an
ARN) is the text scenario. Streams are made from the same response the JSON answer returns.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import calendar
import hmac
import json
import re
import struct
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import botocore.session
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator
from multidict import CIMultiDict

from .threaded import ThreadedServer

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example credentials
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
API_KEY = "bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t"
NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"


def _usage(inp: int, out: int, read: int = 0, write: int = 0) -> dict[str, int]:
    usage = {"inputTokens": inp, "outputTokens": out, "totalTokens": inp + out + read + write}
    if read or write:
        usage |= {"cacheReadInputTokens": read, "cacheWriteInputTokens": write}
    return usage


def _response(content: list[dict[str, Any]], stop: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": usage, "metrics": {"latencyMs": 740}}


# The text and tool answers are the examples of Bedrock's documentation (the Converse API, and
# "Call a tool with the Converse API").
RESPONSES: dict[str, dict[str, Any]] = {
    "text": _response([{"text": "Why don't scientists trust atoms? Because they make up everything!"}],
                      "end_turn", _usage(22, 16)),
    "tools": _response([{"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": "top_song",
                                     "input": {"sign": "WZPZ"}}}], "tool_use", _usage(401, 57)),
    "parallel": _response([{"text": "I'll look up both stations."},
                           {"toolUse": {"toolUseId": "tooluse_WZPZ0000000000000000", "name": "top_song",
                                        "input": {"sign": "WZPZ"}}},
                           {"toolUse": {"toolUseId": "tooluse_WKRP0000000000000000", "name": "top_song",
                                        "input": {"sign": "WKRP"}}}], "tool_use", _usage(410, 90)),
    "cache": _response([{"text": "From the cache."}], "end_turn", _usage(4, 5, read=1500, write=20)),
    "reasoning": _response([{"reasoningContent": {"reasoningText": {"text": "6 x 7 is 42."}}},
                            {"text": "42."}], "end_turn", _usage(12, 30)),
    "max": _response([{"text": "This answer was cut"}], "max_tokens", _usage(10, 5)),
    "stopseq": _response([{"text": "One, two"}], "stop_sequence", _usage(10, 3)),
    "guardrail": _response([{"text": "Sorry, the model cannot answer this question."}], "guardrail_intervened",
                           _usage(10, 9)),
    "filtered": _response([{"text": ""}], "content_filtered", _usage(10, 0)),
    "json": _response([{"text": '{"name": "Ada", "age": 36}'}], "end_turn", _usage(30, 12)),
}
# scenario -> (status, error type, message): the service's documented errors
ERRORS: dict[str, tuple[int, str, str]] = {
    "throttled": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "denied": (403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
    "notfound": (404, "ResourceNotFoundException",
                 "Could not resolve the foundation model from the provided model identifier."),
    "invalid": (400, "ValidationException", "The model returned the following errors: max_tokens: 5000000 > 8192, "
                                            "which is the maximum allowed number of output tokens"),
    "timeout": (408, "ModelTimeoutException", "Model has timed out in processing the request."),
    "unavailable": (503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
    "internal": (500, "InternalServerException", "The server encountered an internal error."),
    "notready": (429, "ModelNotReadyException", "Model is not ready to serve inference requests."),
}
# scenario -> (exception event type, message): a stream that fails after its first text delta
STREAM_ERRORS: dict[str, tuple[str, str]] = {
    "midthrottle": ("throttlingException", "Too many tokens, please wait before trying again."),
    "midmodel": ("modelStreamErrorException", "The model stream failed."),
    "midinvalid": ("validationException", "The input is too long."),
    "midunavailable": ("serviceUnavailableException", "Bedrock is unable to process your request."),
    "midinternal": ("internalServerException", "The server encountered an internal error."),
}


# ---------------------------------------------------------------------------- event-stream frames
def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: string-typed (7) headers, both CRC32s as documented."""
    raw = b"".join(bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
                   for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(raw) + len(payload) + 4, len(raw))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + raw + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(kind: str, data: dict[str, Any]) -> bytes:
    # Bedrock pads each event's JSON with a "p" field (so sizes do not reveal the tokens)
    payload = json.dumps({**data, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[:7 + len(kind) % 9]})
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                 payload.encode())


def exception(kind: str, message: str) -> bytes:
    return frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                 json.dumps({"message": message}).encode())


def _pieces(text: str, size: int = 7) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def frames(resp: dict[str, Any], fail_with: tuple[str, str] | None = None) -> list[bytes]:
    out = [event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(resp["output"]["message"]["content"]):
        if "toolUse" in block:
            use = block["toolUse"]
            out.append(event("contentBlockStart", {"start": {"toolUse": {"toolUseId": use["toolUseId"],
                                                                         "name": use["name"]}},
                                                   "contentBlockIndex": index}))
            for piece in _pieces(json.dumps(use["input"]), 5):
                out.append(event("contentBlockDelta", {"delta": {"toolUse": {"input": piece}},
                                                       "contentBlockIndex": index}))
        elif "reasoningContent" in block:
            for piece in _pieces(block["reasoningContent"]["reasoningText"]["text"]):
                out.append(event("contentBlockDelta", {"delta": {"reasoningContent": {"text": piece}},
                                                       "contentBlockIndex": index}))
        else:
            for piece in _pieces(block["text"]):
                out.append(event("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": index}))
                if fail_with is not None:
                    return [*out, exception(*fail_with)]
        out.append(event("contentBlockStop", {"contentBlockIndex": index}))
    out.append(event("messageStop", {"stopReason": resp["stopReason"]}))
    out.append(event("metadata", {"usage": resp["usage"], "metrics": {"latencyMs": 512}}))
    return out


# ---------------------------------------------------------------------------- signature check
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
                   r"(?P<service>[a-z0-9-]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
                   r"Signature=(?P<signature>[0-9a-f]{64})")


def signature_problem(url: str, headers: Mapping[str, str], body: bytes) -> tuple[str, str] | None:
    """(error type, message) when a POST to `url` (its path as sent) is not signed by the test
    credentials, else None."""
    headers = CIMultiDict(headers)
    auth = headers.get("Authorization", "")
    invalid = "UnrecognizedClientException", "The security token included in the request is invalid."
    if auth.startswith("Bearer "):
        return None if hmac.compare_digest(auth[7:], API_KEY) else invalid
    match = _AUTH.fullmatch(auth)
    if match is None:
        return "IncompleteSignatureException", "Authorization header requires a valid SigV4 signature."
    if match["key"] != ACCESS_KEY:
        return invalid
    amz_date = headers.get("X-Amz-Date", "")
    signed = match["signed"].split(";")
    if (match["region"], match["service"]) != (REGION, "bedrock") or not amz_date.startswith(match["date"]) \
            or not {"host", "x-amz-date", "content-type"} <= set(signed):
        return "InvalidSignatureException", "Credential should be scoped to a valid region and service."
    if abs(calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")) - time.time()) > 300:
        return "InvalidSignatureException", "Signature expired."
    token = headers.get("X-Amz-Security-Token")
    if token is not None and "x-amz-security-token" not in signed:
        return "InvalidSignatureException", "The security token is not signed."
    # botocore's canonical request of what arrived: the signed headers (host from the URL when it
    # was not sent), the path as sent, the body's SHA-256
    aws = AWSRequest(method="POST", url=url, data=body,
                     headers={name: headers[name] for name in signed if name in headers})
    aws.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "bedrock", REGION)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if not hmac.compare_digest(expected, match["signature"]):
        return "InvalidSignatureException", ("The request signature we calculated does not match the signature "
                                             "you provided. Check your AWS Secret Access Key and signing method.")
    return None


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status,
                             headers={"x-amzn-ErrorType": f"{kind}:{NAMESPACE}",
                                      "x-amzn-RequestId": "5a4b2b4e-0000-4000-8000-000000000000"})


def scenario(model_id: str) -> str:
    match = re.fullmatch(r"fake\.(?P<name>[a-z]+)-v1:0", model_id)
    return match["name"] if match else "text"


class FakeBedrock(ThreadedServer):
    def __init__(self) -> None:
        super().__init__()
        self.models: list[str] = []  # the model id of each request, decoded from its path
        self.bodies: list[bytes] = []
        self.tokens: list[str | None] = []  # X-Amz-Security-Token of each request

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.bodies.append(raw)
        self.requests.append(json.loads(raw))
        self.paths.append(request.raw_path)
        self.headers.append(dict(request.headers))
        self.tokens.append(request.headers.get("X-Amz-Security-Token"))
        match = re.fullmatch(r"/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream)", request.raw_path)
        if match is None:
            return _error(404, "UnknownOperationException", "Unknown operation.")
        model_id = unquote(match["model"])
        self.models.append(model_id)
        problem = signature_problem(f"http://{request.host}{request.raw_path}", request.headers, raw)
        if problem is not None:
            return _error(403, *problem)
        name = scenario(model_id)
        if name in ERRORS:
            return _error(*ERRORS[name])
        resp = RESPONSES.get(name, RESPONSES["text"])
        if match["op"] == "converse":
            return web.json_response(resp, headers={"x-amzn-RequestId": "5a4b2b4e-0000-4000-8000-000000000001"})
        stream = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream",
                                             "x-amzn-RequestId": "5a4b2b4e-0000-4000-8000-000000000002"})
        await stream.prepare(request)
        for i, message in enumerate(frames(RESPONSES["text"] if name in STREAM_ERRORS else resp,
                                           STREAM_ERRORS.get(name))):
            if i % 3 == 1:  # some messages split across reads, as TCP may deliver them
                await stream.write(message[:10])
                await asyncio.sleep(0.002)
                message = message[10:]
            await stream.write(message)
        return stream


# ---------------------------------------------------------------------------- the SDK's model
def _from_wire(value: Any, shape: Any) -> Any:
    """A rest-json body back to botocore's parameters: blobs travel as base64 (strictly decoded
    here), documents as they are; unknown keys stay, for the validator to report."""
    if shape.type_name == "structure" and not shape.metadata.get("document") and isinstance(value, dict):
        return {k: _from_wire(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_from_wire(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _from_wire(v, shape.value) for k, v in value.items()}
    if shape.type_name == "blob" and isinstance(value, str):
        return base64.b64decode(value, validate=True)
    return value


def check_converse_body(body: dict[str, Any], model_id: str, stream: bool) -> None:
    """The body (with the model id from the path) is a valid input of botocore's own
    bedrock-runtime service model for Converse or ConverseStream."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    shape = model.operation_model("ConverseStream" if stream else "Converse").input_shape
    assert "modelId" not in body
    report = ParamValidator().validate({**_from_wire(body, shape), "modelId": model_id}, shape)
    assert not report.has_errors(), report.generate_report()
