"""Stored chat completions (`store: true`) through the official SDK: kept as served (JSON and stream),
listed with OpenAI's filters and cursor, re-labelled, their messages listed, deleted; per account."""

from __future__ import annotations

import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.conftest import Gateway

USER = [{"role": "user", "content": "Say hello."}]


def new_key(gateway: Gateway) -> str:
    with gateway.http() as http:
        created = http.post("/v1/keys", json={"name": "store", "credits": "5"})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return gateway.client(new_key(gateway), _strict_response_validation=True)


def test_a_stored_completion_is_kept_as_served(gateway: Gateway, client: openai.OpenAI) -> None:
    served = client.chat.completions.create(model="gpt-4o-mini", messages=USER, store=True,  # type: ignore[arg-type]
                                            metadata={"project": "demo"})
    kept = client.chat.completions.retrieve(served.id)
    assert isinstance(kept, ChatCompletion)
    assert kept.choices[0].message.content == served.choices[0].message.content
    assert (kept.id, kept.model, kept.metadata) == (served.id, served.model, {"project": "demo"})
    # Loosely: the SDK types every listed message as the assistant's, OpenAI lists the user's too.
    loose = gateway.client(client.api_key)
    messages = loose.chat.completions.messages.list(served.id)
    assert [(m.id, m.role, m.content) for m in messages.data] == [(f"{served.id}-0", "user", "Say hello.")]


def test_a_streamed_completion_is_kept_whole(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=USER, store=True,  # type: ignore[arg-type]
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    kept = client.chat.completions.retrieve(chunks[0].id)
    assert kept.choices[0].message.content == text and kept.choices[0].finish_reason == "stop"
    assert kept.usage is not None and kept.usage.completion_tokens > 0


def test_not_stored_without_store(client: openai.OpenAI) -> None:
    served = client.chat.completions.create(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(served.id)
    assert client.chat.completions.list().data == []


def test_list_filters_orders_and_pages(client: openai.OpenAI) -> None:
    ids = [client.chat.completions.create(model="gpt-4o-mini", messages=USER, store=True,  # type: ignore[arg-type]
                                          metadata={"n": str(i), "team": "a" if i % 2 else "b"}).id
           for i in range(5)]
    assert [c.id for c in client.chat.completions.list()] == ids  # the SDK follows `after` across pages
    first = client.chat.completions.list(limit=2)
    assert [c.id for c in first.data] == ids[:2] and first.has_more
    second = client.chat.completions.list(limit=2, after=ids[1])
    assert [c.id for c in second.data] == ids[2:4]
    assert [c.id for c in client.chat.completions.list(order="desc", limit=3).data] == ids[::-1][:3]
    assert [c.id for c in client.chat.completions.list(metadata={"team": "a"}).data] == [ids[1], ids[3]]
    assert client.chat.completions.list(model="gpt-4o").data == []
    assert client.chat.completions.list(after="chatcmpl-unknown").data == []
    assert [c.id for c in client.chat.completions.list(model="gpt-4o-mini", limit=100).data] == ids


def test_update_sets_metadata_and_delete_forgets(client: openai.OpenAI) -> None:
    cid = client.chat.completions.create(model="gpt-4o-mini", messages=USER, store=True).id  # type: ignore[arg-type]
    updated = client.chat.completions.update(cid, metadata={"reviewed": "yes"})
    assert updated.metadata == {"reviewed": "yes"}
    assert client.chat.completions.retrieve(cid).metadata == {"reviewed": "yes"}
    deleted = client.chat.completions.delete(cid)
    assert (deleted.id, deleted.object, deleted.deleted) == (cid, "chat.completion.deleted", True)
    for call in (client.chat.completions.retrieve, client.chat.completions.delete):
        with pytest.raises(openai.NotFoundError):
            call(cid)


def test_another_account_never_sees_them(gateway: Gateway, client: openai.OpenAI) -> None:
    cid = client.chat.completions.create(model="gpt-4o-mini", messages=USER, store=True).id  # type: ignore[arg-type]
    other = gateway.client(new_key(gateway))
    assert other.chat.completions.list().data == []
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.retrieve(cid)
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.update(cid, metadata={"x": "y"})
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.delete(cid)
    assert client.chat.completions.retrieve(cid).id == cid


@pytest.mark.parametrize("query", ["after=%00", "model=%00", "metadata[k]=%00", "metadata[%00]=v", "after=" + "x" * 65])
def test_what_no_completion_can_have_lists_nothing(gateway: Gateway, query: str) -> None:
    with gateway.http() as http:
        http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER, "store": True})
        resp = http.get(f"/v1/chat/completions?{query}")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


@pytest.mark.parametrize("query", ["limit=101", "limit=-1", "limit=ten", "order=up"])
def test_bad_list_parameters_name_the_param(gateway: Gateway, query: str) -> None:
    with gateway.http() as http:
        resp = http.get(f"/v1/chat/completions?{query}")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == query.split("=")[0]


def test_bad_update_bodies_are_400(gateway: Gateway) -> None:
    with gateway.http() as http:
        cid = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER,
                                                      "store": True}).json()["id"]
        for body in ({}, {"metadata": "x"}, {"metadata": {"k": 5}}, {"metadata": {f"k{i}": "v" for i in range(17)}}):
            resp = http.post(f"/v1/chat/completions/{cid}", json=body)
            assert resp.status_code == 400, (body, resp.text)


def test_a_stream_with_junk_tool_call_deltas_is_served_and_kept(gateway: Gateway) -> None:
    """An upstream's tool call deltas are its to get wrong (an index of 10**12, a string for a list,
    numbers for names): the stream is still relayed whole and the answer kept, within seconds, never
    a worker busy building a trillion tool calls."""
    key = new_key(gateway)
    with gateway.http(key) as http:
        with http.stream("POST", "/v1/chat/completions", timeout=15,
                         json={"model": "fake-hostile-tools", "messages": USER, "store": True, "stream": True}) as r:
            assert r.status_code == 200
            body = r.read().decode()
        assert body.rstrip().endswith("data: [DONE]"), body[-300:]
        cid = next(line for line in body.splitlines() if line.startswith("data: {"))
        cid = cid.split('"id":"', 1)[1].split('"', 1)[0]
        kept = http.get(f"/v1/chat/completions/{cid}", timeout=15)
    assert kept.status_code == 200, kept.text
    message = kept.json()["choices"][0]["message"]
    assert message["content"] == "Hi there"
    assert len(message.get("tool_calls") or []) <= 1


@pytest.mark.parametrize("limit", ["²", "9" * 5000, "-1", "1.5", "", "\u0661\u0660"])
def test_a_junk_limit_is_a_400(client: openai.OpenAI, gateway: Gateway, limit: str) -> None:
    with gateway.http(client.api_key) as http:
        listed = http.get("/v1/chat/completions", params={"limit": limit})
    assert listed.status_code == 400, listed.text
    assert listed.json()["error"]["param"] == "limit"
