"""AWS Bedrock (`type: bedrock`) through the Converse and ConverseStream APIs of bedrock-runtime.

- `converse.py`: OpenAI chat to Converse and back (messages, images, tools, inference settings,
  stop reasons, usage) and the error table;
- `stream.py`: the binary event-stream framing and ConverseStream events as OpenAI chunks;
- `provider.py`: credentials (botocore's chain), SigV4 signing (botocore's signer), the adapter;
- `embed.py`: embeddings through InvokeModel (Titan Text Embeddings, Cohere Embed).

botocore is imported only when a Bedrock provider is built: this module, which the provider
registry loads at every start, does not import it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ...catalog import Capabilities, ProviderSpec
from ..base import Provider
from ..embedding_models import EMBEDDING, is_embedding_model
from ..presets import Preset
from ..registry import ProviderType

REGION = r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"  # us-east-1, eu-central-2, us-gov-west-1, cn-north-1
# Environment variables naming a credential source of the AWS chain. The instance role of an EC2
# host is not among them: finding it takes a network lookup, so it needs a configured provider.
CREDENTIAL_ENVS = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_PROFILE",),
                   ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"), ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",),
                   ("AWS_CONTAINER_CREDENTIALS_FULL_URI",))
API_KEY_ENV = "AWS_BEARER_TOKEN_BEDROCK"  # a Bedrock API key, as boto3 reads it
ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL")


class BedrockOptions(BaseModel):
    """`options:` of a `type: bedrock` provider."""

    model_config = ConfigDict(extra="forbid")
    region: Annotated[str, Field(pattern=REGION)] | None = None  # else AWS_REGION, AWS_DEFAULT_REGION, profile
    profile: Annotated[str, Field(min_length=1, max_length=128)] | None = None  # a named profile of ~/.aws


def from_env(env: Mapping[str, str]) -> list[ProviderSpec]:
    """A `bedrock` provider when the environment names both a region and credentials (no
    network, no file read: the chain itself is walked when the provider starts)."""
    from ...settings import Secret

    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region or not re.fullmatch(REGION, region):
        return []
    api_key = env.get(API_KEY_ENV)
    if not api_key and not any(all(env.get(name) for name in names) for names in CREDENTIAL_ENVS):
        return []
    base_url = next((env[name].rstrip("/") for name in ENDPOINT_ENVS if env.get(name)), None)
    return [ProviderSpec(name="bedrock", type="bedrock", display_name="AWS Bedrock", base_url=base_url,
                         api_key=Secret(api_key) if api_key else None, options={"region": region})]


def _build(spec: ProviderSpec) -> Provider:
    from .provider import BedrockProvider

    return BedrockProvider(spec)


def _capabilities(model_id: str, spec: ProviderSpec) -> Capabilities:
    # Converse takes images for the multimodal families (Claude 3 and later, Nova Lite/Pro/Premier,
    # Llama 3.2 vision, Pixtral), found by the id as the other providers' presets do.
    vision = re.search(r"anthropic\.claude-(?!v2|instant)|nova-(lite|pro|premier)|llama3-2-(11|90)b|pixtral",
                       model_id) is not None
    if is_embedding_model(model_id):
        return EMBEDDING
    return Capabilities(vision=vision)


# A cross-region inference profile's prefix, the vendor's prefix, the version suffix:
# `us.anthropic.claude-sonnet-4-5-20250929-v1:0` is Anthropic's `claude-sonnet-4-5-20250929`.
_ANTHROPIC_ID = re.compile(
    r"^(?:(?:us|eu|apac|jp|au|ca|us-gov|global)\.)?anthropic\.(claude-[a-z0-9-]+?)(?:-v\d+(?::\d+)?)?$")


def canonical_id(model_id: str) -> str | None:
    """Anthropic's id of a Claude model on Bedrock (None for the other vendors' models: their
    own APIs are not providers of the gateway, or name them alike)."""
    found = _ANTHROPIC_ID.match(model_id)
    return found.group(1) if found else None


PROVIDER = ProviderType(
    name="bedrock", display_name="AWS Bedrock", build=_build, options=BedrockOptions,
    supported_params=frozenset({"max_tokens", "max_completion_tokens", "stop", "temperature", "top_p", "tools",
                                "tool_choice", "response_format"}),
    # No key variable (`from_env` decides); prices from genai-prices' "aws" table, whose ids
    # without a version suffix are listed as zero-config models ("regional." is the table's
    # notation for the us./eu./apac. inference profiles, not a model id).
    presets=(Preset("bedrock", "bedrock", "AWS Bedrock", "", (), prices_id="aws", model_filter=r"^(?!regional\.)"),),
    from_env=from_env, capabilities=_capabilities, needs_base_url=False,
    endpoints=frozenset({"chat", "embeddings"}), canonical_id=canonical_id,
)
