"""Local models shared by several worker processes.

With `serve --workers N`, loading each GGUF once per worker would multiply memory and make the
workers fight over two cores. Instead the supervisor starts one *model host* process that loads
the local models and serves them with this same gateway's app (chat and text completions only)
on a unix socket in the data directory (mode 0600). Workers reach it like any OpenAI-compatible
upstream; cancellation, queue limits (503) and context errors (400) pass through unchanged.
"""

from __future__ import annotations

import dataclasses

from ..catalog import ProviderSpec, Timeouts
from .base import ChatCall, CompletionCall
from .openai_compat import OpenAIAdapter

# Generation can queue behind other requests: allow for it (the host answers 503 when full).
HOST_TIMEOUTS = Timeouts(connect=5.0, first_token=600.0, idle=600.0, total=3600.0)


def remote_spec(spec: ProviderSpec, socket_path: str) -> ProviderSpec:
    return dataclasses.replace(spec, base_url="http://model-host/v1", unix_socket=socket_path,
                               timeouts=HOST_TIMEOUTS, api_key=None)


class ModelHostAdapter(OpenAIAdapter):
    """Names the exact deployment so the host serves it from the same provider."""

    def upstream_model(self, call: ChatCall | CompletionCall) -> str:
        return f"{call.deployment.provider}/{call.model.id}"
