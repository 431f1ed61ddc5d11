"""Embedding models: their capabilities, prices, and the ones each preset serves with zero config.

Prices come from the genai-prices table (input only: embeddings have no output tokens); a model
the table does not list carries its vendor's published price here.
"""

from __future__ import annotations

import re
from decimal import Decimal

from ..catalog import Capabilities, Deployment, ModelSpec, ProviderSpec
from ..pricing import FREE, ModelPricing, input_only_pricing, pricing_override
from .presets import Preset

EMBEDDING = Capabilities(chat=False, completion=False, function_calling=False, vision=False, embeddings=True,
                         json_mode=False)
_EMBEDDING_ID = re.compile(r"(^|[-_./:])(embed(dings?)?([-_./:\d]|$)|embeddinggemma)", re.IGNORECASE)

_ZERO = Decimal(0)
# (model id, USD per million input tokens when the price table lacks it), by preset.
ZERO_CONFIG: dict[str, tuple[tuple[str, Decimal | None], ...]] = {
    "openai": (("text-embedding-3-small", None), ("text-embedding-3-large", None), ("text-embedding-ada-002", None)),
    # text-embedding-004 has no price: Google serves it free of charge.
    "gemini": (("gemini-embedding-001", None), ("text-embedding-004", _ZERO)),
    "cohere": (("embed-v4.0", None), ("embed-english-v3.0", Decimal("0.10")),
               ("embed-multilingual-v3.0", Decimal("0.10")), ("embed-english-light-v3.0", Decimal("0.10")),
               ("embed-multilingual-light-v3.0", Decimal("0.10"))),
    "bedrock": (("amazon.titan-embed-text-v2:0", None), ("cohere.embed-english-v3", Decimal("0.10")),
                ("cohere.embed-multilingual-v3", Decimal("0.10"))),
    "mistral": (("mistral-embed", None),),
}
def is_embedding_model(model_id: str) -> bool:
    """Whether a model id names an embedding model (text-embedding-3-small, gemini-embedding-001,
    embed-v4.0, amazon.titan-embed-text-v2:0, cohere.embed-english-v3, mistral-embed, ...)."""
    return _EMBEDDING_ID.search(model_id.rsplit("/", 1)[-1]) is not None


def embedding_pricing(model_id: str, prices_id: str | None, fallback: Decimal | None = None) -> ModelPricing | None:
    """The table's input price, else the vendor's published one given here."""
    pricing = input_only_pricing(model_id, prices_id)
    if pricing is None and fallback is not None:
        pricing = FREE if not fallback else pricing_override(fallback, _ZERO, None, "1m_tokens")
    return pricing


def zero_config_models(spec: ProviderSpec, preset: Preset, taken: set[str]) -> list[ModelSpec]:
    """The preset's embedding models, served by the provider enabled from the environment."""
    out = []
    for model_id, fallback in ZERO_CONFIG.get(preset.name, ()):
        if model_id in taken:
            continue
        pricing = embedding_pricing(model_id, preset.prices_id, fallback)
        source = None if pricing is None else "table"  # the table's price, or the vendor's built in here
        out.append(ModelSpec(id=model_id, deployments=(Deployment(spec.name, model_id, pricing=pricing,
                                                                  region=spec.region, price_source=source),),
                             capabilities=EMBEDDING, pricing=pricing, owned_by=spec.name, price_source=source))
        taken.add(model_id)
    return out
