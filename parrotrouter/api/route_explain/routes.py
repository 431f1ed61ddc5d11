from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from ...accounting.reserve import pays_with_credits
from ...protocol.chat import ChatCompletionRequest
from ...protocol.validation import convert
from ...routing.policy import parse_policy
from ...serving.request import GenerationRequest
from ..json import json_response
from ..request import app_state, authenticate, read_json


async def explain(http: web.Request) -> web.Response:
    principal = authenticate(http)
    state = app_state(http)
    raw = await read_json(http)
    request = convert(raw, ChatCompletionRequest)
    wanted = GenerationRequest.decode(request, raw, 0)
    policy = parse_policy(http.headers, wanted.routing)
    plan = state.router.plan(request.model, wanted, policy, wanted.sent_params,
                             lambda: wanted.count_prompt(request.model), allow_empty=True,
                             permit=principal.policy.model_permit(),
                             priced_only=state.accounts is not None and pays_with_credits(principal))
    out: dict[str, Any] = {"object": "route.explain", "model": request.model, **plan.describe()}
    out["policy"] = {k: sorted(v) if isinstance(v, frozenset) else v
                     for k, v in dataclasses.asdict(policy).items() if v not in (None, (), frozenset(), False)
                     or k == "fallbacks_enabled"}
    out["health"] = {c["deployment"]: state.router.health.snapshot().get(c["deployment"], {"circuit": "closed"})
                     for c in out["candidates"]}
    return json_response(out)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/route/explain", explain)
