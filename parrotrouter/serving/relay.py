"""What the serving core does to every answer and stream chunk on the way out: normalise it to
OpenAI's shape, observe usage and the finish, and keep the generated texts for counting."""

from __future__ import annotations

from typing import Any

from ..accounting.usage import UsageRecord
from ..errors import ParrotError, UpstreamFailure
from ..protocol.normalize import normalize_chunk, usage_dict
from .request import Shape
from .types import Chunks, JSONObject

_BILLED_DELTA_TEXTS = ("content", "reasoning", "reasoning_content", "refusal")


class Relay:
    """Per-stream state: normalises each chunk, tracks usage and finish, builds the frames the
    API encodes (data chunks, the usage chunk, an error frame)."""

    __slots__ = ("is_chat", "meta", "record", "roles_sent", "texts")

    def __init__(self, shape: Shape, model: str, provider: str, record: UsageRecord) -> None:
        self.record = record
        self.meta: dict[str, Any] = {"id": record.id, "created": int(record.created_at), "model": model,
                                     "provider": provider, "object_type": shape.chunk_type}
        self.is_chat = shape.chunk_type == "chat.completion.chunk"
        self.roles_sent: set[int] = set()
        self.texts: list[str] = []  # kept only to count tokens if the upstream reports no usage

    def chunks(self, batch: Chunks) -> Chunks:
        """The chunks of one upstream read the client gets (usage-only chunks are ours to send)."""
        out: Chunks = []
        record, is_chat, meta = self.record, self.is_chat, self.meta
        for chunk in batch:
            usage = chunk.pop("usage", None)
            if usage and (usage := usage_dict(usage)):
                record.observe_usage(usage)
            body: dict[str, Any] = chunk
            if not body.get("choices"):
                if "native" in body:  # upstream events of a native stream (NativeCall), relayed as they are
                    out.append(chunk)
                continue
            normalize_chunk(body, id=meta["id"], created=meta["created"], model=meta["model"],
                            provider=meta["provider"], object_type=meta["object_type"])
            for choice in body["choices"]:
                if is_chat and choice["index"] not in self.roles_sent:
                    self.roles_sent.add(choice["index"])
                    choice["delta"].setdefault("role", "assistant")
                if choice["finish_reason"] is not None and choice["index"] == 0:
                    record.finish_reason = choice["finish_reason"]
                self.texts.append(delta_text(choice) if is_chat else choice.get("text") or "")
            out.append(chunk)
        return out

    def usage_chunk(self, accounting: bool = False) -> JSONObject:
        """The stream's last chunk: its usage with the cost (and OpenRouter's accounting details)."""
        meta = self.meta
        return {"id": meta["id"], "object": meta["object_type"], "created": meta["created"], "model": meta["model"],
                "provider": meta["provider"], "choices": [], "usage": self.record.usage_payload(accounting)}

    def error_frame(self, err: ParrotError) -> JSONObject:
        """The frame that ends a failed stream: `finish_reason: "error"` and the error envelope."""
        client_err = err.to_client_error() if isinstance(err, UpstreamFailure) else err
        self.record.status, self.record.error_code = client_err.status, client_err.code
        choice: JSONObject = {"index": 0, "finish_reason": "error"}
        if self.is_chat:
            choice["delta"] = {}
        else:
            choice["text"] = ""
        meta = self.meta
        return {"id": meta["id"], "object": meta["object_type"], "created": meta["created"], "model": meta["model"],
                "provider": meta["provider"], "choices": [choice], **client_err.envelope()}


def delta_text(choice: dict[str, Any]) -> str:
    """Every generated text of a delta (or message): what the upstream bills as completion tokens."""
    delta = choice["delta"]
    if not isinstance(delta, dict):
        return ""
    content = delta.get("content")
    if len(delta) == 1 or (len(delta) == 2 and "role" in delta):  # most chunks: the content alone
        return content if isinstance(content, str) else ""
    text = "".join([t for f in _BILLED_DELTA_TEXTS if isinstance(t := delta.get(f), str)])
    for call in delta.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            text += "".join(t for f in ("name", "arguments") if isinstance(t := fn.get(f), str))
    audio = delta.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("transcript"), str):
        text += audio["transcript"]
    return text


def choice_text(choice: dict[str, Any]) -> str:
    """The generated text of a non-streaming choice."""
    message = choice.get("message")
    if message is None:
        return str(choice.get("text") or "")
    return delta_text({"delta": message})
