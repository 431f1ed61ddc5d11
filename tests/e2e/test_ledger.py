"""The usage ledger end to end, on SQLite and PostgreSQL: no request can stop it for everyone, a
row the database refuses is set aside while the others are written and charged, /ready tells
when the ledger cannot write, and no admitted request's row is lost to SIGTERM (nor, beyond one
flush interval, to SIGKILL)."""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from parrotrouter.store.db import database_url as async_url
from parrotrouter.store.schema import usage, usage_rejects
from tests.conftest import Gateway, fake_config
from tests.fakes.openai_upstream import FakeOpenAI

USER = [{"role": "user", "content": "Say hello"}]
FLUSH = 0.2  # the default ledger_flush_seconds


@pytest.fixture
def ledger_gw(make_gateway: Any, fake_upstream: FakeOpenAI, database_url: str) -> Gateway:
    gw: Gateway = make_gateway(fake_config(fake_upstream, database_url=database_url, key_refresh_seconds=0.5),
                               env={"FAKE_UPSTREAM_KEY": "k"})
    gw.database_url = database_url  # type: ignore[attr-defined]
    return gw.start()


def new_key(gw: Gateway, credits: str = "5") -> dict[str, Any]:
    with gw.http() as http:
        created = http.post("/v1/keys", json={"name": "ledger", "credits": credits})
    assert created.status_code == 201, created.text
    key: dict[str, Any] = created.json()
    eventually(lambda: chat(gw, key["key"]).status_code == 200)
    return key


def chat(gw: Gateway, key: str, raw: bytes | None = None, **body: Any) -> httpx.Response:
    content = raw if raw is not None else orjson.dumps({"model": "gpt-4o-mini", "messages": USER, **body})
    return httpx.post(gw.url + "/v1/chat/completions", content=content, timeout=30,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})


def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met within the time limit")


def query(gw: Gateway, statement: Any) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(async_url(gw.database_url, gw.home))  # type: ignore[attr-defined]
        try:
            async with engine.begin() as conn:
                result = await conn.execute(statement if not isinstance(statement, str) else sa.text(statement))
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def ready(gw: Gateway) -> httpx.Response:
    return httpx.get(gw.url + "/ready", timeout=10)


def balance(gw: Gateway, key: dict[str, Any]) -> Decimal:
    with gw.http() as http:
        return Decimal(str(http.get(f"/v1/keys/{key['id']}").json()["balance"]["credits"]))


def generation(gw: Gateway, key: str, generation_id: str) -> httpx.Response:
    return httpx.get(gw.url + "/v1/generation", params={"id": generation_id}, timeout=30,
                     headers={"Authorization": f"Bearer {key}"})


def test_bad_text_in_model_or_user_does_not_stop_the_ledger(ledger_gw: Gateway) -> None:
    gw = ledger_gw
    key = new_key(gw)
    secret = key["key"]
    messages = orjson.dumps(USER).decode()
    bad_values = ["gpt-4o-mini\\u0000", "\\u0000", "\\ud800", "a\\ud800\\u0000b", "x" * 10_000]
    refused = [chat(gw, secret, f'{{"model": "{v}", "messages": {messages}}}'.encode()) for v in bad_values]
    assert all(400 <= r.status_code < 500 for r in refused), [(r.status_code, r.text[:200]) for r in refused]
    served = [chat(gw, secret, f'{{"model": "gpt-4o-mini", "messages": {messages}, "user": "{v}"}}'.encode())
              for v in bad_values]
    assert all(r.status_code < 500 for r in served), [(r.status_code, r.text[:200]) for r in served]
    nul_user = served[0]
    assert nul_user.status_code == 200  # served today: its row must be written all the same
    ordinary = [chat(gw, secret, user=f"end-user-{i}") for i in range(20)]
    assert all(r.status_code == 200 for r in ordinary)
    ids = [r.json()["id"] for r in ordinary]
    for generation_id in ids[-3:]:  # found while pending too: the route writes the batch first
        found = generation(gw, secret, generation_id)
        assert found.status_code == 200 and found.json()["id"] == generation_id
    shown = generation(gw, secret, nul_user.json()["id"]).json()
    assert shown["user"] == "gpt-4o-mini" and shown["ended_by"] is None  # "gpt-4o-mini\0" without its NUL
    rows = query(gw, sa.select(usage).where(usage.c.key_id == key["id"]))
    by_id = {r.id: r for r in rows}
    assert set(ids) <= set(by_id)
    assert len(rows) >= len(ids) + sum(r.status_code == 200 for r in served) + 1  # the key check's request too
    for row in rows:
        for value in (row.requested_model, row.user):
            assert value is None or ("\x00" not in value and len(value) <= 256)
    spent = sum((r.cost for r in rows), Decimal(0))
    assert spent > 0 and balance(gw, key) == Decimal(5) - spent  # every served request charged
    health = ready(gw)
    assert health.status_code == 200, health.text
    ledger = health.json()["checks"]["ledger"]
    assert ledger["ok"] and ledger["rejected"] == 0 and not ledger["failing"] and ledger["pending"] == 0


def refuse_user(gw: Gateway, value: str) -> None:
    """A rule in the database that refuses one value (an operator's CHECK, a trigger)."""
    if str(gw.database_url).startswith("sqlite"):  # type: ignore[attr-defined]
        query(gw, f"""CREATE TRIGGER refuse BEFORE INSERT ON usage WHEN NEW."user" = '{value}'
                      BEGIN SELECT RAISE(ABORT, 'refused by rule'); END""")
    else:
        query(gw, f"""ALTER TABLE usage ADD CONSTRAINT refuse CHECK ("user" <> '{value}')""")


def test_a_row_the_database_refuses_is_set_aside_and_the_others_written(ledger_gw: Gateway) -> None:
    gw = ledger_gw  # strict accounting, as in every test: setting a row aside is not a failure
    key = new_key(gw)
    refuse_user(gw, "poison")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30,
                                     headers={"Authorization": f"Bearer {key['key']}"}) as http:
            users = [f"u{i}" for i in range(12)]
            users[5] = "poison"
            return await asyncio.gather(*(http.post("/v1/chat/completions", json={
                "model": "gpt-4o-mini", "messages": USER, "user": u}) for u in users))

    answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [200] * 12
    poison_id = answers[5].json()["id"]
    others = [r.json()["id"] for i, r in enumerate(answers) if i != 5]
    eventually(lambda: ready(gw).json()["checks"]["ledger"]["rejected"] == 1)
    # The rows after the refused one may come in a later batch: every one of them is written.
    rows = lambda: {r.id: r for r in query(gw, sa.select(usage).where(usage.c.key_id == key["id"]))}  # noqa: E731
    eventually(lambda: set(others) <= set(rows()))
    written = rows()
    assert set(others) <= set(written) and poison_id not in written
    rejects = query(gw, sa.select(usage_rejects))
    assert [r.generation_id for r in rejects] == [poison_id]
    record = orjson.loads(rejects[0].record)
    assert record["user"] == "poison" and Decimal(record["cost"]) > 0 and "refuse" in rejects[0].error.lower()
    # The refused request is charged like the others (its cost was below its reservation).
    spent = sum((r.cost for r in written.values()), Decimal(0)) + Decimal(record["cost"])
    assert balance(gw, key) == Decimal(5) - spent
    shown = generation(gw, key["key"], poison_id)  # from the set-aside record
    assert shown.status_code == 200 and shown.json()["user"] == "poison"
    health = ready(gw)
    assert health.status_code == 200 and health.json()["checks"]["ledger"]["written"] >= 12
    assert "1 row(s) refused by the database were set aside in usage_rejects" in gw.output()
    assert chat(gw, key["key"], user="after").status_code == 200
    eventually(lambda: ready(gw).json()["checks"]["ledger"]["pending"] == 0)
    assert ready(gw).json()["checks"]["ledger"]["rejected"] == 1


def test_ready_fails_while_the_ledger_cannot_write_and_recovers(make_gateway: Any, fake_upstream: FakeOpenAI,
                                                                 database_url: str) -> None:
    gw: Gateway = make_gateway(fake_config(fake_upstream, database_url=database_url, key_refresh_seconds=0.5),
                               env={"FAKE_UPSTREAM_KEY": "k", "PARROTROUTER_ACCOUNTING_STRICT": "false"})
    gw.database_url = database_url  # type: ignore[attr-defined]
    gw.start()
    key = new_key(gw)
    query(gw, "ALTER TABLE usage RENAME TO usage_away")  # every ledger write now fails
    try:
        served = [chat(gw, key["key"]) for _ in range(5)]
        assert [r.status_code for r in served] == [200] * 5  # requests are still served
        eventually(lambda: ready(gw).status_code == 503)
        checks = ready(gw).json()["checks"]["ledger"]
        assert not checks["ok"] and checks["failing"] and checks["pending"] >= 5 and checks["rejected"] == 0
        shown = generation(gw, key["key"], served[0].json()["id"])  # answered from the queue
        assert shown.status_code == 200 and shown.json()["usage"]["completion_tokens"] > 0
    finally:
        query(gw, "ALTER TABLE usage_away RENAME TO usage")
    eventually(lambda: ready(gw).status_code == 200)
    ids = {r.id for r in query(gw, sa.select(usage.c.id))}
    assert {r.json()["id"] for r in served} <= ids
    assert not query(gw, sa.select(usage_rejects))  # a failing database dead-letters nothing


async def steady_load(gw: Gateway, key: str, sig: int, after: float, workers: int = 12
                      ) -> tuple[list[tuple[str, float]], float]:
    """Requests from `workers` clients, back to back, until `sig` is sent `after` seconds after
    the first answer. Returns the ids of the answered requests with when each answer arrived, and
    when the signal was sent (monotonic clock)."""
    answered: list[tuple[str, float]] = []
    stopping = asyncio.Event()
    body = {"model": "gpt-4o-mini", "messages": USER}

    async with httpx.AsyncClient(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {key}"},
                                 limits=httpx.Limits(max_connections=workers)) as http:
        async def client() -> None:
            while not stopping.is_set():
                try:
                    resp = await http.post("/v1/chat/completions", json=body)
                except httpx.HTTPError:
                    continue
                if resp.status_code == 200:
                    answered.append((resp.json()["id"], time.monotonic()))
                else:
                    assert resp.status_code == 503, resp.text  # shutting down

        tasks = [asyncio.create_task(client()) for _ in range(workers)]
        for _ in range(200):
            if answered:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(after)
        assert gw.proc is not None
        signalled = time.monotonic()
        gw.proc.send_signal(sig)
        stopping.set()
        await asyncio.gather(*tasks)
    return answered, signalled


def test_durability_sigterm_loses_nothing_sigkill_at_most_one_flush_and_restart_is_clean(
        make_gateway: Any, fake_upstream: FakeOpenAI, database_url: str) -> None:
    config = fake_config(fake_upstream, database_url=database_url, key_refresh_seconds=0.5)
    env = {"FAKE_UPSTREAM_KEY": "k"}
    first: Gateway = make_gateway(config, env=env)
    first.database_url = database_url  # type: ignore[attr-defined]
    first.start()
    key = new_key(first, credits="100")

    answered, _ = asyncio.run(steady_load(first, key["key"], signal.SIGTERM, after=1.5))
    assert first.proc is not None and first.proc.wait(20) == 0
    rows = {r.id for r in query(first, sa.select(usage.c.id))}
    assert len(answered) > 20 and {gid for gid, _ in answered} <= rows  # 0 rows lost

    def again() -> Gateway:  # the same data directory and database
        gw = Gateway(first.home, config, env=env)
        gw.database_url = database_url  # type: ignore[attr-defined]
        started.append(gw)
        gw.start()
        assert chat(gw, key["key"]).status_code == 200
        return gw

    started: list[Gateway] = []
    try:
        second = again()
        answered, killed = asyncio.run(steady_load(second, key["key"], signal.SIGKILL, after=1.5))
        assert second.proc is not None and second.proc.wait(20) == -signal.SIGKILL
        rows = {r.id for r in query(second, sa.select(usage.c.id))}
        settled_before = [gid for gid, at in answered if at < killed - FLUSH - 0.3]
        assert len(settled_before) > 20
        missing = [gid for gid in settled_before if gid not in rows]
        assert not missing, f"{len(missing)} of {len(settled_before)} rows lost"

        third = again()
        assert ready(third).status_code == 200
        served = [chat(third, key["key"]) for _ in range(3)]
        assert [r.status_code for r in served] == [200] * 3
        for answer in served:
            assert generation(third, key["key"], answer.json()["id"]).status_code == 200
        assert "Traceback" not in third.output()
        assert third.stop() == 0
    finally:
        for gw in started:
            gw.stop()
