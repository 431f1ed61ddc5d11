"""`DELETE /v1/models/{model}`: OpenAI's deletion of a fine-tuned model, forwarded to the provider that
serves it, for the master key only (the provider account is the operator's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.fakes.openai_account import FINE_TUNED, FakeOpenAIAccount


@pytest.fixture(scope="module")
def account() -> Iterator[FakeOpenAIAccount]:
    fake = FakeOpenAIAccount().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(account: FakeOpenAIAccount, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    def model(model_id: str) -> dict[str, Any]:
        return {"id": model_id, "deployments": [{"provider": "openai", "model": model_id}],
                "pricing": {"prompt": "0.3", "completion": "1.2"}}

    config = {"env_providers": False,
              "providers": [{"name": "openai", "type": "openai", "base_url": account.base_url,
                             "api_key": {"$env": "ACCOUNT_KEY"}}],
              "models": [model(FINE_TUNED), model("gpt-4o-mini"), {**model("tuned"), "deployments": [
                  {"provider": "openai", "model": FINE_TUNED}]}]}
    gateway = Gateway(tmp_path_factory.mktemp("delete"), config, env={"ACCOUNT_KEY": "sk-org-admin"})
    gateway.start()
    yield gateway
    gateway.stop()


def test_master_key_deletes_a_fine_tuned_model_at_its_provider(gw: Gateway, account: FakeOpenAIAccount) -> None:
    deleted = gw.client().models.delete(FINE_TUNED)
    assert (deleted.id, deleted.object, deleted.deleted) == (FINE_TUNED, "model", True)
    assert account.deleted[-1] == FINE_TUNED and account.delete_auth[-1] == "Bearer sk-org-admin"


def test_a_gateway_name_is_deleted_under_its_upstream_name(gw: Gateway, account: FakeOpenAIAccount) -> None:
    with gw.http() as http:
        resp = http.delete("/v1/models/tuned")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"id": "tuned", "object": "model", "deleted": True}
    assert account.deleted[-1] == FINE_TUNED


def test_ordinary_keys_may_not_delete_models(gw: Gateway, account: FakeOpenAIAccount) -> None:
    with gw.http() as http:
        key = http.post("/v1/keys", json={"name": "app", "credits": "5"}).json()["key"]
    before = len(account.deleted)
    with pytest.raises(openai.PermissionDeniedError) as err:
        gw.client(key).models.delete(FINE_TUNED)
    assert err.value.body["type"] == "permission_error"  # type: ignore[index]
    assert len(account.deleted) == before


@pytest.mark.parametrize("name", ["ft:gpt-4o:someone-else:x:1", "no-such-model"])
def test_unknown_models_are_404_in_the_envelope(gw: Gateway, name: str) -> None:
    with gw.http() as http:
        resp = http.delete(f"/v1/models/{name}")
    assert resp.status_code == 404, resp.text
    error = resp.json()["error"]
    assert error["param"] == "model" and error["code"] == "not_found"


def test_a_model_the_provider_does_not_know_is_404(gw: Gateway, account: FakeOpenAIAccount) -> None:
    """The gateway lists it, the provider no longer has it (deleted elsewhere): OpenAI's 404, passed on."""
    account.models.pop("gpt-4o-mini")
    try:
        with gw.http() as http:
            resp = http.delete("/v1/models/gpt-4o-mini")
    finally:
        account.models["gpt-4o-mini"] = {"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "system"}
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["param"] == "model"


def test_a_pinned_name_deletes_at_that_provider_only(make_gateway: Any, account: FakeOpenAIAccount) -> None:
    """`second/both` names the model's deployment at `second`: the deletion goes there, never to
    the model's first provider (another account's fine-tune would be deleted)."""
    other = FakeOpenAIAccount().start()
    try:
        config = {"env_providers": False, "providers": [
            {"name": "openai", "type": "openai", "base_url": account.base_url, "api_key": {"$env": "ACCOUNT_KEY"}},
            {"name": "second", "type": "openai", "base_url": other.base_url, "api_key": {"$env": "ACCOUNT_KEY"}}],
            "models": [{"id": "both", "pricing": {"prompt": "0.3", "completion": "1.2"}, "deployments": [
                {"provider": "openai", "model": FINE_TUNED}, {"provider": "second", "model": FINE_TUNED}]}]}
        gw: Gateway = make_gateway(config, env={"ACCOUNT_KEY": "sk-org-admin"}).start()
        before = len(account.deleted)
        with gw.http() as http:
            resp = http.delete("/v1/models/second/both")
        assert resp.status_code == 200, resp.text
        assert other.deleted == [FINE_TUNED] and len(account.deleted) == before
    finally:
        other.stop()
