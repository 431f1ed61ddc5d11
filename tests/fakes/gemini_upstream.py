"""A fake Gemini Generative Language API (generateContent, streamGenerateContent?alt=sse) in the
documented wire format. The model name picks the scenario."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .threaded import ThreadedServer

SIGNATURE = "CiQB0e2Kb1gkV5pVf3n1Wq9Y2Qm4sA=="


def _usage(prompt: int = 10, out: int = 8, cached: int = 0, thoughts: int = 0) -> dict[str, int]:
    meta = {"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out + thoughts}
    if cached:
        meta["cachedContentTokenCount"] = cached
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


SCENARIOS: dict[str, dict[str, Any]] = {
    "gemini-text": {"parts": [{"text": "Hello there! How can I help?"}], "finish": "STOP", "usage": _usage()},
    "gemini-cache": {"parts": [{"text": "From cache."}], "finish": "STOP", "usage": _usage(120, 3, cached=100)},
    "gemini-tools": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}},
                                "thoughtSignature": SIGNATURE}], "finish": "STOP", "usage": _usage(30, 12)},
    "gemini-parallel": {"parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                   "thoughtSignature": SIGNATURE},
                                  {"functionCall": {"name": "get_weather", "args": {"city": "Tokyo"}}}],
                        "finish": "STOP", "usage": _usage(30, 20)},
    "gemini-thinking": {"parts": [{"text": "Six times seven is forty-two.", "thought": True},
                                  {"text": "6 x 7 = 42."}], "finish": "STOP", "usage": _usage(12, 8, thoughts=25)},
    "gemini-json": {"parts": [{"text": '{"name": "Ada", "age": 36}'}], "finish": "STOP", "usage": _usage()},
    "gemini-max": {"parts": [{"text": "This was cut"}], "finish": "MAX_TOKENS", "usage": _usage()},
    "gemini-safety": {"parts": [], "finish": "SAFETY", "usage": _usage(10, 0)},
    "gemini-malformed-call": {"parts": [], "finish": "MALFORMED_FUNCTION_CALL", "usage": _usage(10, 0)},
}
ERRORS = {
    "gemini-429": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "gemini-503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "gemini-400": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "gemini-403": (403, "PERMISSION_DENIED", "API key not valid."),
}


def response(model: str, n: int = 1) -> dict[str, Any]:
    spec = SCENARIOS.get(model, SCENARIOS["gemini-text"])
    candidates = [{"content": {"role": "model", "parts": spec["parts"]}, "finishReason": spec["finish"], "index": i}
                  for i in range(n)]
    return {"candidates": candidates, "usageMetadata": spec["usage"], "modelVersion": model,
            "responseId": "resp-4d0b4b1d"}


def chunks(model: str, n: int = 1, error_midway: bool = False) -> list[bytes]:
    full = response(model if not error_midway else "gemini-text", n)
    out = []
    text_parts = [p for p in full["candidates"][0]["content"]["parts"] if "text" in p]
    other = [p for p in full["candidates"][0]["content"]["parts"] if "text" not in p]
    pieces: list[dict[str, Any]] = []
    for part in text_parts:
        text = part["text"]
        for i in range(0, len(text), 8):
            pieces.append({**part, "text": text[i:i + 8]})
    pieces += other  # function calls arrive whole
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        candidates = []
        for c in range(n):
            cand: dict[str, Any] = {"content": {"role": "model", "parts": [piece]}, "index": c}
            if last:
                cand["finishReason"] = full["candidates"][0]["finishReason"]
            candidates.append(cand)
        chunk: dict[str, Any] = {"candidates": candidates, "modelVersion": model, "responseId": "resp-4d0b4b1d"}
        chunk["usageMetadata"] = full["usageMetadata"] if last else {"promptTokenCount": 10}
        out.append(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
        if error_midway and i == 1:
            err = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
            out.append(b"data: " + json.dumps(err).encode() + b"\r\n\r\n")
            return out
    if not pieces:  # nothing generated: one chunk with the finish reason
        candidates = [{"content": {"role": "model", "parts": []}, "finishReason": full["candidates"][0]["finishReason"],
                       "index": c} for c in range(n)]
        out.append(b"data: " + json.dumps({"candidates": candidates, "usageMetadata": full["usageMetadata"],
                                           "responseId": "resp-4d0b4b1d"}).encode() + b"\r\n\r\n")
    return out


class FakeGemini(ThreadedServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{call}", self.generate)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model, _, action = request.match_info["call"].partition(":")
        if model in ERRORS:
            status, kind, text = ERRORS[model]
            return web.json_response({"error": {"code": status, "message": text, "status": kind}}, status=status)
        n = (body.get("generationConfig") or {}).get("candidateCount", 1)
        if action == "generateContent":
            return web.json_response(response(model, n))
        assert action == "streamGenerateContent" and request.query.get("alt") == "sse"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in chunks(model if model != "gemini-midstream" else "gemini-text", n,
                            error_midway=model == "gemini-midstream"):
            await resp.write(chunk)
        return resp
