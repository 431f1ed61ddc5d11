"""A fake OpenAI account: the fake OpenAI upstream (tests/fakes/openai_upstream.py: chat, completions,
Responses) plus OpenAI's model endpoints, in OpenAI's documented wire format:

- `GET /v1/models`: `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`, the
  org's fine-tuned model (`owned_by` the org, as OpenAI lists them) among OpenAI's own;
- `GET /v1/models/{model}`: one of those, or OpenAI's 404 `model_not_found` error;
- `DELETE /v1/models/{model}`: `{"id", "object": "model", "deleted": true}` for the org's fine-tuned
  models, 404 `model_not_found` for unknown ids, 403 for OpenAI's own models (as OpenAI answers).
  Like the API spec's mock server, the fake stays stateless: a deleted model is deleted again on the
  next call (each call is recorded in `deleted`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .openai_upstream import FakeOpenAI

ORG = "acemeco"
FINE_TUNED = f"ft:gpt-4.1-mini-2025-04-14:{ORG}:suffix:abc123"  # the id openai-python's tests delete
MODELS: tuple[tuple[str, str, int], ...] = (
    ("gpt-6.2-astra", "system", 1_780_000_000),
    ("gpt-4o-mini", "system", 1_721_172_741),
    ("gpt-3.5-turbo-instruct", "system", 1_692_901_427),
    ("text-embedding-3-small", "system", 1_705_948_997),
    (FINE_TUNED, ORG, 1_750_000_000),
)


def model_object(model_id: str, owned_by: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def _not_found(model_id: str) -> web.Response:
    return web.json_response({"error": {
        "message": f"The model '{model_id}' does not exist", "type": "invalid_request_error", "param": "model",
        "code": "model_not_found"}}, status=404)


class FakeOpenAIAccount(FakeOpenAI):
    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[str] = []
        self.delete_auth: list[str | None] = []  # the Authorization header of each DELETE
        self.models = {m[0]: model_object(*m) for m in MODELS}

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model}", self.get_model)
        app.router.add_delete("/v1/models/{model}", self.delete_model)

    async def list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": list(self.models.values())})

    async def get_model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["model"]
        found = self.models.get(model_id)
        return _not_found(model_id) if found is None else web.json_response(found)

    async def delete_model(self, request: web.Request) -> web.Response:
        model_id = request.match_info["model"]
        self.delete_auth.append(request.headers.get("Authorization"))
        found = self.models.get(model_id)
        if found is None:
            return _not_found(model_id)
        if found["owned_by"] != ORG:
            return web.json_response({"error": {
                "message": "You have insufficient permissions for this operation.", "type": "invalid_request_error",
                "param": None, "code": None}}, status=403)
        self.deleted.append(model_id)
        return web.json_response({"id": model_id, "object": "model", "deleted": True})
