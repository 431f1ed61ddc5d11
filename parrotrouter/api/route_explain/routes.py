from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from ...protocol.chat import ChatCompletionRequest
from ...protocol.validation import convert
from ...routing.policy import parse_policy
from ...tokens import estimate_chat_prompt_tokens
from ..json import json_response
from ..request import app_state, authenticate, read_json


async def explain(http: web.Request) -> web.Response:
    principal = authenticate(http)
    state = app_state(http)
    raw = await read_json(http)
    request = convert(raw, ChatCompletionRequest)
    policy = parse_policy(http.headers, raw)
    plan = state.router.plan(request.model, request, policy, raw,
                             lambda: estimate_chat_prompt_tokens(request.messages, request.tools, request.model),
                             allow_empty=True)
    out: dict[str, Any] = {"object": "route.explain", "model": request.model, **plan.describe()}
    keys = principal.policy
    out["candidates"] = [c for c in out["candidates"] if keys.allows_model(c["model"])
                         or (c["model"] == (plan.candidates[0].model.id if plan.candidates else None)
                             and keys.allows_model(request.model))]
    out["policy"] = {k: sorted(v) if isinstance(v, frozenset) else v
                     for k, v in dataclasses.asdict(policy).items() if v not in (None, (), frozenset(), False)
                     or k == "fallbacks_enabled"}
    out["health"] = {c["deployment"]: state.router.health.snapshot().get(c["deployment"], {"circuit": "closed"})
                     for c in out["candidates"]}
    return json_response(out)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/route/explain", explain)
