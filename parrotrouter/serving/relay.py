"""What the serving core does to every answer and stream chunk on the way out: normalise it to
OpenAI's shape, observe usage and the finish, and keep the generated texts for counting."""

from __future__ import annotations

from typing import Any

from ..accounting.usage import UsageRecord
from ..errors import ParrotError, UpstreamFailure
from ..protocol.normalize import normalize_chunk, plain_choice, usage_dict
from .request import Shape
from .types import Chunks, JSONObject

_BILLED_DELTA_TEXTS = ("content", "reasoning", "reasoning_content", "refusal")


class Relay:
    """Per-stream state: normalises each chunk, tracks usage and finish, builds the frames the
    API encodes (data chunks, the usage chunk, an error frame)."""

    __slots__ = ("is_chat", "meta", "record", "roles_sent", "stamp", "texts")

    def __init__(self, shape: Shape, model: str, provider: str, record: UsageRecord) -> None:
        self.record = record
        self.meta: dict[str, Any] = {"id": record.id, "created": int(record.created_at), "model": model,
                                     "provider": provider, "object_type": shape.chunk_type}
        # what every chunk gets, in normalize_chunk's order (dict.update keeps the upstream's key order)
        self.stamp: dict[str, Any] = {"id": record.id, "object": shape.chunk_type, "created": int(record.created_at),
                                      "model": model, "provider": provider}
        self.is_chat = shape.chunk_type == "chat.completion.chunk"
        self.roles_sent: set[int] = set()
        self.texts: list[str] = []  # kept only to count tokens if the upstream reports no usage

    def chunks(self, batch: Chunks) -> Chunks:
        """The chunks of one upstream read the client gets (usage-only chunks are ours to send)."""
        out: Chunks = []
        record, stamp, object_type = self.record, self.stamp, self.meta["object_type"]
        is_chat, roles_sent, texts = self.is_chat, self.roles_sent, self.texts
        for chunk in batch:
            if "usage" in chunk and (usage := chunk.pop("usage")) and (usage := usage_dict(usage)):
                record.observe_usage(usage)
            body: dict[str, Any] = chunk
            choice = plain_choice(body, object_type)
            if choice is not None:  # the fast path: the chunk needs only our stamp
                body.update(stamp)
                if is_chat:
                    delta = choice["delta"]
                    if choice["index"] not in roles_sent:
                        roles_sent.add(choice["index"])
                        delta.setdefault("role", "assistant")
                    content = delta.get("content")
                    # most chunks: the content alone (delta_text for the others)
                    texts.append(content if len(delta) == 1 and type(content) is str else delta_text(choice))
                else:
                    texts.append(choice.get("text") or "")
                if choice["finish_reason"] is not None and choice["index"] == 0:
                    record.finish_reason = choice["finish_reason"]
            elif not self._normalize(body):
                if "native" in body:  # upstream events of a native stream (NativeCall), relayed as they are
                    out.append(chunk)
                continue
            out.append(chunk)
        return out

    def _normalize(self, body: dict[str, Any]) -> bool:
        """The slow path: a chunk `normalize_chunk` must mend; False for one without choices."""
        if not body.get("choices"):
            return False
        meta = self.meta
        normalize_chunk(body, id=meta["id"], created=meta["created"], model=meta["model"],
                        provider=meta["provider"], object_type=meta["object_type"])
        for choice in body["choices"]:
            self._observe(choice)
        return True

    def _observe(self, choice: dict[str, Any]) -> None:
        """A normalised choice: its role on its first chunk, the finish, its texts kept."""
        if self.is_chat:
            if choice["index"] not in self.roles_sent:
                self.roles_sent.add(choice["index"])
                choice["delta"].setdefault("role", "assistant")
            text = delta_text(choice)
        else:
            text = choice.get("text") or ""
        if choice["finish_reason"] is not None and choice["index"] == 0:
            self.record.finish_reason = choice["finish_reason"]
        self.texts.append(text)

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
