"""The OpenAI-compatible provider's pieces of the SDK surface, over an injected transport: DELETE
/models/{model} (fine-tuned models) and a non-streaming request's `stream_options` left out."""

from __future__ import annotations

import orjson
import pytest

from parrotrouter.errors import FailureKind, UpstreamFailure
from parrotrouter.providers.openai_compat import OpenAIAdapter, OpenAIProvider
from tests.providers.canned import Canned, CannedTransport
from tests.providers.test_http_provider import SPEC, call

FINE_TUNED = "ft:gpt-4o-mini:acemeco:suffix:abc123"


def provider(*answers: Canned) -> tuple[OpenAIProvider, CannedTransport]:
    transport = CannedTransport(*answers)
    prov = OpenAIProvider(SPEC, OpenAIAdapter(SPEC))
    prov.client = transport
    return prov, transport


async def test_delete_model_sends_openais_request_and_reads_its_answer() -> None:
    prov, transport = provider(Canned(body=orjson.dumps({"id": FINE_TUNED, "object": "model", "deleted": True})))
    assert await prov.delete_model(FINE_TUNED) is True
    sent = transport.sent[0]
    assert (sent.method, sent.url, sent.body) == ("DELETE", "https://up.example/v1/models/ft%3Agpt-4o-mini%3Aacemeco"
                                                  "%3Asuffix%3Aabc123", b"")
    assert sent.encoded_url and sent.headers["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("answer", [b"[]", b'{"id": "x"}', b'{"deleted": "yes"}', b"not json"])
async def test_a_malformed_deletion_answer_is_a_stream_protocol_failure(answer: bytes) -> None:
    prov, _ = provider(Canned(body=answer))
    with pytest.raises(UpstreamFailure) as err:
        await prov.delete_model(FINE_TUNED)
    assert err.value.kind is FailureKind.STREAM_PROTOCOL


async def test_an_unknown_model_is_the_upstreams_404() -> None:
    error = {"error": {"message": "The model 'x' does not exist", "code": "model_not_found"}}
    prov, _ = provider(Canned(status=404, body=orjson.dumps(error)))
    with pytest.raises(UpstreamFailure) as err:
        await prov.delete_model("x")
    assert err.value.kind is FailureKind.NOT_FOUND


async def test_stream_options_without_stream_are_not_forwarded() -> None:
    answer = {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"},
                                      "finish_reason": "stop"}]}
    prov, transport = provider(Canned(body=orjson.dumps(answer)))
    await prov.chat(call(stream=False, stream_options={"include_usage": True}))
    assert "stream_options" not in orjson.loads(transport.sent[0].body)
