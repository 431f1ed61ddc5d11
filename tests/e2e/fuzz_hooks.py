"""Schemathesis hooks for tests/e2e/test_fuzz.py, loaded by the `schemathesis run` process.

Random model names, key ids and generation ids all end in a 4xx before reaching the code behind
them, and so do most random routing preferences (unknown providers, fallback models). These
hooks mix in values that exist on the gateway under test (passed in environment variables by the
test) and often leave the routing preferences out, so generated requests also reach routing,
providers, credits, the ledger and the key store. The generated values stay among the choices,
so the fuzzer still tries them.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

# Models of the fake upstream that answer (its failure scenarios would be legitimate 5xx).
GOOD_MODELS = ["gpt-4o-mini", "mini", "fake/gpt-4o-mini", "fake-tools", "fake-no-usage", "auto"]
GENERATION_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/route/explain", "/v1/messages",
                    "/v1/messages/count_tokens", "/v1/responses")
ROUTING_FIELDS = ("models", "provider")


def _known(var: str) -> list[str]:
    return [v for v in os.environ.get(var, "").split(",") if v]


def _sometimes(value: Any, known: list[str]) -> st.SearchStrategy[Any]:
    """The generated value or, more often, one that exists on the gateway."""
    return st.sampled_from([*known, value]) if known else st.just(value)


def _generation(context: schemathesis.HookContext) -> bool:
    return context.operation is not None and context.operation.path in GENERATION_PATHS


def _without(mapping: dict[str, Any], names: tuple[str, ...], drop: bool) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in names} if drop else mapping


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    if _generation(context) and isinstance(body, dict) and "model" in body:
        return st.tuples(_sometimes(body["model"], GOOD_MODELS), st.booleans()).map(
            lambda pick: {**_without(body, ROUTING_FIELDS, pick[1]), "model": pick[0]})
    return st.just(body)


@schemathesis.hook
def flatmap_headers(context: schemathesis.HookContext, headers: Any) -> st.SearchStrategy[Any]:
    if _generation(context) and isinstance(headers, dict):
        routing = tuple(name for name in headers if name.lower().startswith("x-"))
        return st.booleans().map(lambda drop: _without(headers, routing, drop))
    return st.just(headers)


@schemathesis.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: Any) -> st.SearchStrategy[Any]:
    if isinstance(path_parameters, dict):
        if "key_id" in path_parameters:
            return _sometimes(path_parameters["key_id"], _known("PARROTROUTER_FUZZ_KEY_IDS")).map(
                lambda key_id: {**path_parameters, "key_id": key_id})
        if "model_id" in path_parameters:
            return _sometimes(path_parameters["model_id"], GOOD_MODELS).map(
                lambda model: {**path_parameters, "model_id": model})
    return st.just(path_parameters)


@schemathesis.hook
def flatmap_query(context: schemathesis.HookContext, query: Any) -> st.SearchStrategy[Any]:
    operation = context.operation
    if operation is not None and operation.path == "/v1/generation" and isinstance(query, dict) and "id" in query:
        return _sometimes(query["id"], _known("PARROTROUTER_FUZZ_GENERATION_IDS")).map(
            lambda gen_id: {**query, "id": gen_id})
    return st.just(query)
