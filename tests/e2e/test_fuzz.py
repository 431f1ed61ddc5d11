"""Property-based fuzzing of every operation in the gateway's own OpenAPI document (Schemathesis).

The real gateway runs on SQLite and on PostgreSQL, with the fake upstream behind it so generation
requests can succeed. `schemathesis run` loads `/openapi.json` from the running gateway and, for
every operation, sends the document's examples, its boundary cases (coverage phase) and random
valid and invalid requests (fuzzing phase), checking that:

- no answer is a 5xx (`not_a_server_error`);
- the status code is one the document lists (`status_code_conformance`): the 2xx it names, or a
  4xx/5xx in the error envelope;
- the Content-Type is one the document lists (`content_type_conformance`);
- the body validates against the document (`response_schema_conformance`): every 2xx against its
  schema (each server-sent event of a stream against the chunk schema), every 4xx against the
  error envelope;
- an operation that declares the bearer scheme refuses a request without it (`ignored_auth`).

It runs once as the master key (key administration, no credit checks) and once as an ordinary
key with a few cents of credits and a daily cap (reservations, 402s, 403s). Afterwards the
ledger must have written every request's row: a value that reaches the database must not poison
the usage log.

Generation is derandomized and bounded, and edge values are mixed in from dictionaries
(tests/e2e/schemathesis.toml); tests/e2e/fuzz_hooks.py steers requests to models, keys and
ledger rows that exist. The test drives the Schemathesis command line, its stable interface; on
failure the assertion message is its report, with a curl command reproducing each failure, and
the end of the gateway's log.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import MASTER_KEY, Gateway, fake_config, fresh_pg_database
from tests.fakes.openai_upstream import FakeOpenAI

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "schemathesis.toml"  # generation, phases, checks, edge-value dictionaries
HOOKS = HERE / "fuzz_hooks.py"


@dataclasses.dataclass
class Seeded:
    key_ids: list[str]  # a key and its account for the hooks to mix into path parameters
    generation_ids: list[str]  # a ledger row for the hooks to mix into `?id=`
    caller_key: str  # an ordinary key's secret: a few cents of credits, a daily cap


def _seed(gw: Gateway) -> Seeded:
    """Keys with credits and one finished request, so the fuzzer also reaches existing rows."""
    with gw.http() as http:
        target = http.post("/v1/keys", json={"name": "fuzz target", "credits": "1"})
        caller = http.post("/v1/keys", json={"name": "fuzz caller", "credits": "0.05",
                                             "permissions": {"max_cost_per_day": "0.03"}})
        done = http.post("/v1/chat/completions", json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    for resp in (target, caller, done):
        assert resp.status_code in (200, 201), resp.text
    return Seeded([target.json()["id"], target.json()["account_id"]], [done.json()["id"]], caller.json()["key"])


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_gateway(request: pytest.FixtureRequest, fake_upstream: FakeOpenAI,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("fuzz")
    drop: Callable[[], None] | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'state.db'}"
    else:
        url, drop = fresh_pg_database()
    gw = Gateway(home, fake_config(fake_upstream, database_url=url, key_refresh_seconds=0.5),
                 env={"FAKE_UPSTREAM_KEY": "k"})
    try:
        yield gw.start()
    finally:
        gw.stop()
        if drop is not None:
            drop()


def run_schemathesis(gw: Gateway, seeded: Seeded, bearer: str, workdir: Path,
                     *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "PARROTROUTER_FUZZ_BEARER": bearer,
           "PARROTROUTER_FUZZ_KEY_IDS": ",".join(seeded.key_ids),
           "PARROTROUTER_FUZZ_GENERATION_IDS": ",".join(seeded.generation_ids), "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
           gw.url + "/openapi.json", "--url", gw.url, *args]
    # Run in a scratch directory, so Schemathesis' cache stays out of the repository.
    return subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=400, check=False)


def ledger_problems(gw: Gateway) -> list[str]:
    """Every row written: reading usage flushes the ledger, and readiness reports its failures."""
    with gw.http() as http:
        usage = http.get("/v1/usage/current")
        ready = http.get("/ready")
    problems = []
    if usage.status_code != 200:
        problems.append(f"GET /v1/usage/current after fuzzing: {usage.status_code} {usage.text}")
    ledger = ready.json().get("checks", {}).get("ledger", {})
    if ready.status_code != 200 or ledger.get("failures") or ledger.get("pending"):
        problems.append(f"GET /ready after fuzzing: {ready.status_code} {ready.text}")
    return problems


@pytest.mark.timeout(420)
@pytest.mark.parametrize("caller", ["master", "key"])
def test_fuzz_every_operation(fuzz_gateway: Gateway, caller: str, tmp_path: Path) -> None:
    gw = fuzz_gateway
    seeded = _seed(gw)
    bearer = MASTER_KEY if caller == "master" else seeded.caller_key
    run = run_schemathesis(gw, seeded, bearer, tmp_path)
    problems = ledger_problems(gw)
    if run.returncode != 0:
        problems.insert(0, f"schemathesis (exit {run.returncode}):\n{run.stdout}{run.stderr}")
    assert not problems, "\n\n".join(problems) + f"\n--- gateway log (end) ---\n{gw.output()[-15000:]}"
