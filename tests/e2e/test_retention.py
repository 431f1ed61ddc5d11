"""Logging headers and content retention, against the real gateway over HTTP: no prompt or answer is
kept anywhere by default (the database's every table and file, the server's output at debug level);
content is kept only when the operator allows it AND the request asks, is shown to the owner only,
and is deleted after the retention period; hostile logging headers are a 400 on every generation
endpoint; X-Generation-Id is the answer's id and the ledger row's, on JSON, SSE and errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from parrotrouter.store.db import database_url as async_url
from tests.conftest import MASTER_KEY, Gateway, fake_config
from tests.e2e.test_ledger import eventually
from tests.fakes.embeddings_upstream import FakeEmbeddings
from tests.fakes.openai_upstream import FakeOpenAI

EMBEDDING_MODEL = "text-embedding-3-small"
DEBUG_ALL = {"X-Logging-Level": "debug", "X-Log-Request": "true", "X-Log-Response": "true"}


@pytest.fixture(scope="module")
def embeddings_upstream() -> Iterator[FakeEmbeddings]:
    fake = FakeEmbeddings().start()
    yield fake
    fake.stop()


def start_gateway(home: Path, fake: FakeOpenAI, emb: FakeEmbeddings, database_url: str, *,
                  args: list[str] | None = None, **server: Any) -> Gateway:
    """A gateway with the fake chat models and an embeddings model, its ledger on `database_url`."""
    config = fake_config(fake, database_url=database_url, key_refresh_seconds=0.2, **server)
    config["providers"].append({"name": "emb", "type": "openai", "base_url": emb.openai_url,
                                "api_key": {"$env": "FAKE_UPSTREAM_KEY"}})
    config["models"].append({"id": EMBEDDING_MODEL, "deployments": [{"provider": "emb"}],
                             "capabilities": {"chat": False, "embeddings": True},
                             "pricing": {"prompt": "0.02", "completion": "0"}})
    # the request log on: its lines must carry no content either
    gw = Gateway(home, config, env={"FAKE_UPSTREAM_KEY": "sk-upstream", "PARROTROUTER_REQUEST_LOG": "true"},
                 args=args)
    gw.database_url = database_url  # type: ignore[attr-defined]
    return gw.start()


def post(gw: Gateway, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
         key: str = MASTER_KEY) -> httpx.Response:
    return httpx.post(gw.url + path, json=body, timeout=30,
                      headers={"Authorization": f"Bearer {key}", **(headers or {})})


def first_event(resp: httpx.Response) -> dict[str, Any]:
    line = next(line for line in resp.text.split("\n") if line.startswith("data: {"))
    return dict(json.loads(line[6:]))


def answer_id(path: str, resp: httpx.Response) -> str | None:
    """The generation id the answer's body gives (embeddings' bodies carry none)."""
    if resp.headers["content-type"].startswith("text/event-stream"):
        event = first_event(resp)
        if path == "/v1/messages":
            return str(event["message"]["id"])
        if path == "/v1/responses":
            return str(event["response"]["id"])
        return str(event["id"])
    body = resp.json()
    return None if path == "/v1/embeddings" else str(body["id"])


def generation(gw: Gateway, generation_id: str, key: str = MASTER_KEY) -> httpx.Response:
    return httpx.get(gw.url + "/v1/generation", params={"id": generation_id}, timeout=30,
                     headers={"Authorization": f"Bearer {key}"})


def new_key(gw: Gateway, name: str) -> str:
    with gw.http() as http:
        created = http.post("/v1/keys", json={"name": name, "credits": "5"})
    assert created.status_code == 201, created.text
    key = str(created.json()["key"])
    eventually(lambda: httpx.get(gw.base_url + "/models", headers={"Authorization": f"Bearer {key}"}).status_code
               == 200)
    return key


def requests_with(marker: str) -> list[tuple[str, dict[str, Any]]]:
    """A request on every generation endpoint, JSON and SSE, answered, failed and failing mid-stream,
    each with the marker in its prompt (the `echo` model answers with it too)."""
    say = [{"role": "user", "content": f"Remember {marker} please"}]
    return [
        ("/v1/chat/completions", {"model": "fake-echo", "messages": say}),
        ("/v1/chat/completions", {"model": "fake-echo", "messages": say, "stream": True,
                                  "stream_options": {"include_usage": True}}),
        ("/v1/chat/completions", {"model": "fake-error-in-stream", "messages": say, "stream": True}),
        ("/v1/chat/completions", {"model": "fake-500", "messages": say}),
        ("/v1/chat/completions", {"model": "fake-400-leaky", "messages": say}),
        ("/v1/completions", {"model": "gpt-4o-mini", "prompt": f"Remember {marker}"}),
        ("/v1/completions", {"model": "gpt-4o-mini", "prompt": f"Remember {marker}", "stream": True}),
        ("/v1/embeddings", {"model": EMBEDDING_MODEL, "input": [f"Remember {marker}"]}),
        ("/v1/messages", {"model": "fake-echo", "max_tokens": 64, "messages": say}),
        ("/v1/messages", {"model": "fake-echo", "max_tokens": 64, "messages": say, "stream": True}),
        # `store: false`: conversation state the client asks the Responses API to keep is not logging
        ("/v1/responses", {"model": "gpt-4o-mini", "input": f"Remember {marker}", "store": False}),
        ("/v1/responses", {"model": "gpt-4o-mini", "input": f"Remember {marker}", "store": False, "stream": True}),
    ]


def every_stored_value(gw: Gateway) -> list[str]:
    """Every value of every row of every table of the gateway's database, as text."""
    async def run() -> list[str]:
        engine = create_async_engine(async_url(gw.database_url, gw.home))  # type: ignore[attr-defined]
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
                values: list[str] = []
                for name in names:
                    rows = (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all()
                    values += [str(value) for row in rows for value in row]
                return values
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.parametrize("asks", [False, True], ids=["no-headers", "debug-headers"])
def test_no_prompt_or_answer_is_kept_by_default(fake_upstream: FakeOpenAI, embeddings_upstream: FakeEmbeddings,
                                                database_url: str, tmp_path: Path, asks: bool) -> None:
    """With content logging off (the default), whatever the request asks: the marker is nowhere in
    the database (every table, every column; SQLite's files byte for byte) nor in the server's
    output at debug level."""
    marker = "ZRMARK" + uuid.uuid4().hex
    gw = start_gateway(tmp_path / "gw", fake_upstream, embeddings_upstream, database_url, args=["--log-level", "debug"])
    try:
        ids = []
        headers = {**DEBUG_ALL, "X-Log-Metadata": '{"team": "search"}'} if asks else {}
        for path, body in requests_with(marker):
            resp = post(gw, path, body, headers)
            assert resp.status_code in (200, 400, 502), resp.text
            ids.append(resp.headers["X-Generation-Id"])
        for generation_id in ids:
            shown = generation(gw, generation_id)
            assert shown.status_code == 200 and shown.json()["content"] is None
            assert marker not in shown.text
    finally:
        gw.stop()
    assert " DEBUG " in gw.output()  # the server logged at debug level
    assert marker not in gw.output()
    values = every_stored_value(gw)
    assert len([v for v in values if v in ids]) >= len(ids)  # every request has its row
    assert not [v for v in values if marker in v]
    for file in tmp_path.rglob("*"):
        if file.is_file() and file.suffix != ".log":
            assert marker.encode() not in file.read_bytes(), file


def test_content_is_kept_when_allowed_and_asked_shown_to_its_owner_and_purged(
        fake_upstream: FakeOpenAI, embeddings_upstream: FakeEmbeddings, database_url: str, tmp_path: Path) -> None:
    marker = "KEEPME" + uuid.uuid4().hex
    gw = start_gateway(tmp_path / "gw", fake_upstream, embeddings_upstream, database_url, content_logging=True,
                       content_purge_seconds=0.3, content_max_bytes=4000, args=["--log-level", "debug"])
    try:
        owner, other = new_key(gw, "owner"), new_key(gw, "other")
        say = [{"role": "user", "content": f"Remember {marker}"}]
        labels = {"X-Log-Metadata": '{"team": "search", "ticket": "T-1"}', "X-Log-User-ID": "user-42",
                  "X-Log-Session-ID": "session 7"}

        kept = post(gw, "/v1/chat/completions", {"model": "fake-echo", "messages": say},
                    {**DEBUG_ALL, **labels}, key=owner)
        assert kept.status_code == 200
        shown = generation(gw, kept.headers["X-Generation-Id"], key=owner).json()
        assert marker in shown["content"]["request"] and json.loads(shown["content"]["request"])["messages"] == say
        answer = json.loads(shown["content"]["response"])
        assert answer["choices"][0]["message"]["content"] == f"You said: Remember {marker}"
        assert not shown["content"]["request_truncated"] and not shown["content"]["response_truncated"]
        assert (shown["metadata"], shown["user"], shown["session_id"]) == (
            {"team": "search", "ticket": "T-1"}, "user-42", "session 7")
        assert generation(gw, kept.headers["X-Generation-Id"], key=other).status_code == 404
        assert generation(gw, kept.headers["X-Generation-Id"]).json()["content"] == shown["content"]  # the master

        # A stream keeps what was relayed; only what was asked is kept.
        streamed = post(gw, "/v1/chat/completions", {"model": "fake-echo", "messages": say, "stream": True},
                        {"X-Logging-Level": "debug", "X-Log-Response": "true"}, key=owner)
        content = generation(gw, streamed.headers["X-Generation-Id"], key=owner).json()["content"]
        assert content["request"] is None and content["response"] == f"You said: Remember {marker}"
        message = post(gw, "/v1/messages", {"model": "fake-echo", "max_tokens": 64, "messages": say, "stream": True},
                       DEBUG_ALL, key=owner)
        content = generation(gw, message.headers["X-Generation-Id"], key=owner).json()["content"]
        assert marker in content["request"] and content["response"] == f"You said: Remember {marker}"
        embedded = post(gw, "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": [marker]}, DEBUG_ALL, key=owner)
        content = generation(gw, embedded.headers["X-Generation-Id"], key=owner).json()["content"]
        assert marker in content["request"] and content["response"] is None  # vectors are not kept

        long = post(gw, "/v1/chat/completions", {"model": "fake-echo", "messages": [
            {"role": "user", "content": "é" * 5000}]}, DEBUG_ALL, key=owner)
        content = generation(gw, long.headers["X-Generation-Id"], key=owner).json()["content"]
        assert content["request_truncated"] and content["response_truncated"]
        assert len(content["request"].encode()) <= 4000 and len(content["response"].encode()) <= 4000

        # Not asked at debug, or not asked at all: nothing kept (labels are, at every level).
        for headers in ({"X-Logging-Level": "info", "X-Log-Request": "true", "X-Log-Response": "true", **labels},
                        {"X-Log-Request": "true"}, {}):
            plain = post(gw, "/v1/chat/completions", {"model": "fake-echo", "messages": say}, headers, key=owner)
            assert generation(gw, plain.headers["X-Generation-Id"], key=owner).json()["content"] is None

        # Past the retention period: never shown, then deleted by the purge.
        query(gw, "UPDATE generation_content SET created_at = created_at - 31 * 86400")
        assert generation(gw, kept.headers["X-Generation-Id"], key=owner).json()["content"] is None
        eventually(lambda: not query(gw, "SELECT id FROM generation_content"))
        assert generation(gw, kept.headers["X-Generation-Id"], key=owner).json()["metadata"] == {
            "team": "search", "ticket": "T-1"}  # the ledger row and its labels stay
        stored = post(gw, "/v1/responses", {"model": "fake-echo", "input": f"Remember {marker}"}, key=owner)
        assert stored.status_code == 200 and marker in stored.text  # a stored Responses row
    finally:
        gw.stop()
    # At debug level the database drivers' statement lines would carry the stored prompt: never logged.
    assert " DEBUG " in gw.output() and marker not in gw.output()


def query(gw: Gateway, statement: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(async_url(gw.database_url, gw.home))  # type: ignore[attr-defined]
        try:
            async with engine.begin() as conn:
                result = await conn.execute(sa.text(statement))
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


HOSTILE = [
    ("X-Logging-Level", "verbose"),
    ("X-Log-Request", "yes"),
    ("X-Log-Response", "maybe"),
    ("X-Log-Metadata", "not json"),
    ("X-Log-Metadata", '["a list"]'),
    ("X-Log-Metadata", '{"nested": {"a": "b"}}'),
    ("X-Log-Metadata", '{"n": 1}'),
    ("X-Log-Metadata", json.dumps({f"k{i}": "v" for i in range(17)})),
    ("X-Log-Metadata", json.dumps({"k": "v" * 257})),
    ("X-Log-Metadata", json.dumps({"k" * 65: "v"})),
    ("X-Log-Metadata", json.dumps({"": "v"})),
    ("X-Log-Metadata", json.dumps({"k": "line\nbreak"})),
    ("X-Log-Metadata", json.dumps({f"k{i}": "v" * 200 for i in range(12)})),  # > 2 KiB
    ("X-Log-Metadata", '{"k": "\\ud800"}'),
    ("X-Log-User-ID", "u" * 129),
    ("X-Log-User-ID", ""),
    ("X-Log-Session-ID", "tab\there"),
    ("X-Log-Session-ID", "\u2028separator"),
    ("X-Log-User-ID", "\udcffnot-utf8"),  # sent as the byte 0xff
]
ENDPOINTS = [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/completions", {"model": "gpt-4o-mini", "prompt": "hi"}),
    ("/v1/embeddings", {"model": "gpt-4o-mini", "input": "hi"}),
    ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}),
]


@pytest.mark.parametrize(("path", "body"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
def test_hostile_logging_headers_are_a_400_naming_the_header(gateway: Gateway, path: str,
                                                             body: dict[str, Any]) -> None:
    with gateway.http() as http:
        for name, value in [*HOSTILE, ("X-Log-Session-ID", "twice")]:
            sent = [(name, value.encode("utf-8", "surrogateescape"))]
            if value == "twice":
                sent.append((name, b"again"))
            resp = http.post(path, json=body, headers=sent)
            assert resp.status_code == 400, (name, value, resp.text)
            error = resp.json()["error"]
            assert name in error["message"] and error["type"] == "invalid_request_error"
            if path == "/v1/messages":
                assert resp.json()["type"] == "error"  # Anthropic's shape
            else:
                assert error["param"] == name
            assert "X-Generation-Id" not in resp.headers  # refused before any generation began


def test_valid_logging_headers_are_taken_in_any_case(gateway: Gateway) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json=ENDPOINTS[0][1], headers=[
            ("x-logging-level", b"INFO"), ("X-LOG-REQUEST", b"False"), ("X-Log-User-ID", "café-7".encode()),
            ("X-Log-Metadata", b'{"k": "v", "empty": ""}')])
    assert resp.status_code == 200, resp.text
    row = generation(gateway, resp.headers["X-Generation-Id"]).json()
    assert row["user"] == "café-7" and row["metadata"] == {"k": "v", "empty": ""}


GENERATING = [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/completions", {"model": "gpt-4o-mini", "prompt": "hi"}),
    ("/v1/embeddings", {"model": EMBEDDING_MODEL, "input": ["hi"]}),
    ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}),
]


@pytest.fixture(scope="module")
def ids_gateway(fake_upstream: FakeOpenAI, embeddings_upstream: FakeEmbeddings,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("gw-ids")
    gw = start_gateway(home, fake_upstream, embeddings_upstream, f"sqlite:///{home / 'state.db'}")
    yield gw
    gw.stop()


ANSWERS = [(path, body, stream) for path, body in GENERATING for stream in (False, True)
           if not (stream and path == "/v1/embeddings")]  # embeddings do not stream


@pytest.mark.parametrize(("path", "body", "stream"), ANSWERS,
                         ids=[f"{p}-{'sse' if s else 'json'}" for p, _, s in ANSWERS])
def test_the_generation_id_header_is_the_answer_id_and_the_ledger_row(ids_gateway: Gateway, path: str,
                                                                      body: dict[str, Any], stream: bool) -> None:
    resp = post(ids_gateway, path, {**body, "stream": True} if stream else body)
    assert resp.status_code == 200, resp.text
    generation_id = resp.headers["X-Generation-Id"]
    assert answer_id(path, resp) == (None if path == "/v1/embeddings" else generation_id)
    row = generation(ids_gateway, generation_id)
    assert row.status_code == 200 and row.json()["id"] == generation_id
    assert row.json()["request_id"] == resp.headers["x-request-id"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_failed_generation_names_its_ledger_row(ids_gateway: Gateway, stream: bool) -> None:
    resp = post(ids_gateway, "/v1/chat/completions", {"model": "fake-500", "stream": stream,
                                                      "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 502, resp.text
    row = generation(ids_gateway, resp.headers["X-Generation-Id"]).json()
    assert row["status"] == 502 and row["error_code"] == resp.json()["error"]["code"]
    failing = post(ids_gateway, "/v1/chat/completions", {"model": "fake-error-in-stream", "stream": True,
                                                         "messages": [{"role": "user", "content": "hi"}]})
    assert failing.status_code == 200 and first_event(failing)["id"] == failing.headers["X-Generation-Id"]
    assert generation(ids_gateway, failing.headers["X-Generation-Id"]).json()["ended_by"] == "upstream"
    refused = post(ids_gateway, "/v1/chat/completions", {"model": "gpt-4o-mini"})  # no generation began
    assert refused.status_code == 400 and "X-Generation-Id" not in refused.headers
