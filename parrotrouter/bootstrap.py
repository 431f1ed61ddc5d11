"""Assemble an `AppState` from settings: home directory, config, providers, router, auth."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import TYPE_CHECKING

from .accounting.credits import CreditManager
from .accounting.ledger import Ledger
from .accounting.usage import DiscardingSink, NullSink
from .auth.keystore import KeyAuthenticator, KeyCache, KeyStore
from .auth.principal import MasterKeyAuthenticator, TrustedSocketAuthenticator
from .catalog import AUTO, Catalog
from .config import ResolvedConfig, load_config
from .discovery import CatalogRefresh, build_discovery
from .errors import ConfigError, ParrotError, echo
from .home import Home, hash_key
from .observe import Observers
from .observe.performance import Performance
from .observe.provider_health import ProviderHealth
from .observe.request_log import RequestLog
from .providers.base import Provider
from .providers.http import build_provider
from .ratelimit.limiter import RateLimiter
from .routing.health import BreakerSettings, Health, SharedHealth
from .routing.policy import Budget
from .routing.router import Router
from .settings import Settings, load_settings
from .state import Accounts, AppState
from .store.content import ContentLog
from .store.db import create_engine, database_url, migrate_sync

if TYPE_CHECKING:
    from .observe.tracing import Tracing


@dataclasses.dataclass(frozen=True)
class Prepared:
    settings: Settings
    config: ResolvedConfig
    home: Home


def prepare(cli: dict[str, object] | None = None) -> Prepared:
    """Resolve settings (CLI > env > file) and load the config file; raises ConfigError."""
    first = load_settings(cli)
    config = load_config(first.config, local_models=first.local_models)
    settings = load_settings(cli, file=config.server) if config.server else first
    if settings.local_models != first.local_models:
        config = load_config(settings.config, local_models=settings.local_models)
    check_auto_model(settings.auto_model, config.catalog)
    home = Home(settings.home)
    home.ensure()
    return Prepared(settings, config, home)


def check_auto_model(name: str | None, catalog: Catalog) -> None:
    """The `auto_model` setting names a chat model of the catalog (not `auto` itself); ConfigError if not."""
    if name is None:
        return
    problem = None
    if name == AUTO:
        problem = "cannot be 'auto' itself"
    else:
        try:
            model = catalog.resolve(name).model
        except ParrotError:
            problem = (f"'{echo(name)}' is not a model of this gateway's catalog (`parrotrouter models` lists "
                       "them; check the spelling, or enable the provider that serves it)")
        else:
            if not model.capabilities.chat:
                problem = f"'{echo(name)}' is not a chat model (it serves no chat requests)"
    if problem is not None:
        raise ConfigError([f"auto_model: {problem}"], "settings")


def build_state(prepared: Prepared) -> AppState:
    settings, home = prepared.settings, prepared.home
    catalog = prepared.config.catalog
    secret = home.server_secret()
    if settings.master_key is not None:
        master_hash: str | None = hash_key(secret, settings.master_key.reveal())
    else:
        record = home.master_key()
        master_hash = record.key_hash if record else None
    providers = {name: build_provider(spec, settings.model_host) for name, spec in catalog.providers.items()}
    tracing = build_tracing(settings)
    if not settings.accounting:
        router = Router(catalog, providers, auto_model=settings.auto_model)
        return _listening(AppState(
            settings=settings, catalog=catalog, providers=providers, router=router,
            authenticator=MasterKeyAuthenticator(secret, master_hash), usage=NullSink(),
            budget=Budget.from_settings(settings), observers=build_observers(settings, tracing, catalog),
            tracing=tracing,
            provider_health=build_provider_health(settings, catalog, providers, router.health),
            discovery=_discovery(settings, catalog)))
    engine = create_engine(database_url(settings.database_url, home.path))
    cache = KeyCache(engine, interval=settings.key_refresh_seconds)
    credits = CreditManager(engine)
    content = ContentLog(engine, retention_days=settings.content_retention_days, max_bytes=settings.content_max_bytes,
                         purge_every=settings.content_purge_seconds, strict=settings.accounting_strict)
    ledger = Ledger(engine, credits, strict=settings.accounting_strict, interval=settings.ledger_flush_seconds,
                    home=home.path, content=content)
    accounts = Accounts(engine=engine, keys=KeyStore(engine, secret), key_cache=cache, credits=credits,
                        ledger=ledger)
    router = Router(catalog, providers, build_health(settings), auto_model=settings.auto_model)
    return _listening(AppState(
        settings=settings,
        catalog=catalog,
        providers=providers,
        router=router,
        authenticator=KeyAuthenticator(secret, master_hash, cache),
        usage=ledger,
        accounts=accounts,
        limiter=build_limiter(settings),
        budget=Budget.from_settings(settings),
        observers=build_observers(settings, tracing, catalog),
        tracing=tracing,
        provider_health=build_provider_health(settings, catalog, providers, router.health),
        discovery=_discovery(settings, catalog),
    ))


def _listening(state: AppState) -> AppState:
    """Provider health follows the catalog's deployments as discovery changes them."""
    health = state.provider_health
    if state.discovery is not None and health is not None:
        state.discovery.listeners.append(
            lambda catalog: health.track(d for m in catalog.models.values() for d in m.deployments))
    return state


def _discovery(settings: Settings, catalog: Catalog) -> CatalogRefresh | None:
    return build_discovery(catalog, settings.discover_models, interval=settings.discovery_interval,
                           timeout=settings.discovery_timeout)


def build_observers(settings: Settings, tracing: Tracing | None = None, catalog: Catalog | None = None) -> Observers:
    """Metrics, traces and the request log, each as its settings ask (observe/)."""
    observers = Observers(strict=settings.accounting_strict)
    if settings.metrics:
        from .observe.metrics import Metrics, MetricsObserver  # imported only when on: it reads its env

        observers.add(MetricsObserver(Metrics(), catalog.listed if catalog is not None else None))
    if settings.performance:
        observers.add(Performance(settings.performance_window, settings.redis_url, settings.redis_timeout))
    if tracing is not None:
        observers.add(tracing)  # traces (observe/tracing.py): ends request spans, tokens and cost final
    if settings.request_log:
        observers.add(RequestLog())  # one line per request (observe/request_log.py)
    return observers


def build_provider_health(settings: Settings, catalog: Catalog, providers: dict[str, Provider],
                          breakers: Health) -> ProviderHealth:
    """Provider health for /v1/models and /ready: probes as the settings and the config file ask."""
    return ProviderHealth(catalog.providers, providers, breakers, interval=settings.health_probe_interval,
                          timeout=settings.health_probe_timeout,
                          deployments=(d for model in catalog.models.values() for d in model.deployments),
                          redis_url=settings.redis_url, redis_timeout=settings.redis_timeout)


def build_tracing(settings: Settings) -> Tracing | None:
    """OpenTelemetry traces when an OTLP endpoint is set (the `otlp_endpoint` setting, else the
    standard OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT), unless OTEL_SDK_DISABLED=true. None otherwise:
    OpenTelemetry is not even imported."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not (settings.otlp_endpoint or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return None
    from .observe.tracing import Tracing

    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces" if settings.otlp_endpoint else None
    return Tracing.exporting(endpoint)


def build_health(settings: Settings) -> Health:
    """Circuit breakers: shared through Redis when there is one (every worker and instance)."""
    breaker = BreakerSettings(failure_threshold=settings.breaker_failure_threshold,
                              success_threshold=settings.breaker_success_threshold,
                              cooldown=settings.breaker_cooldown)
    if settings.redis_url:
        return SharedHealth(settings.redis_url, breaker, timeout=settings.redis_timeout)
    return Health(breaker)


def build_limiter(settings: Settings) -> RateLimiter:
    # Each backend's client library is imported only when it is the one configured.
    if settings.redis_url:
        from .ratelimit.redis import RedisRateLimiter

        return RedisRateLimiter(settings.redis_url, fail_open=settings.limits_fail_open,
                                timeout=settings.redis_timeout)
    from .ratelimit.memory import MemoryRateLimiter

    return MemoryRateLimiter()


def check_limits_backend(prepared: Prepared) -> None:
    """Several processes counting limits in memory would each allow the full limit: refuse."""
    settings = prepared.settings
    if settings.workers <= 1 or settings.redis_url or not settings.accounting:
        return
    reason = None
    if settings.limit_defaults.any:
        reason = "rate limits are configured (rate_limit_* settings)"
    else:
        url = database_url(settings.database_url, prepared.home.path)
        keys = asyncio.run(_keys_with_limits(url))
        if keys:
            reason = f"{len(keys)} API key(s) have rate limits (e.g. {keys[0]})"
    if reason:
        raise ConfigError([
            f"--workers {settings.workers} without Redis: {reason}, and each worker would count them on its "
            "own, multiplying every limit by the number of workers. Set redis_url (PARROTROUTER_REDIS_URL, "
            "e.g. redis://127.0.0.1:6379/0) or run one worker."], "settings")


async def _keys_with_limits(url: str) -> list[str]:
    import sqlalchemy as sa

    from .store.schema import api_keys

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(api_keys.c.id, api_keys.c.permissions)
                                       .where(api_keys.c.revoked_at.is_(None)))).all()
    finally:
        await engine.dispose()
    fields = ("max_requests_per_minute", "max_requests_per_day", "max_tokens_per_minute")
    return [r.id for r in rows if any((r.permissions or {}).get(f) for f in fields)]


def migrate_database(prepared: Prepared) -> None:
    """Bring the database schema up to date (run once before serving)."""
    if not prepared.settings.accounting:
        return
    migrate_sync(database_url(prepared.settings.database_url, prepared.home.path))


def local_only(catalog: Catalog) -> Catalog | None:
    """The part of the catalog served by in-process local models, or None if there is none."""
    local = {n: s for n, s in catalog.providers.items() if s.type == "llamacpp"}
    if not local:
        return None
    models = [dataclasses.replace(m, deployments=tuple(d for d in m.deployments if d.provider in local))
              for m in catalog.models.values() if any(d.provider in local for d in m.deployments)]
    return Catalog(local.values(), models)


def build_model_host_state(prepared: Prepared, catalog: Catalog) -> AppState:
    providers = {name: build_provider(spec) for name, spec in catalog.providers.items()}
    return AppState(settings=prepared.settings, catalog=catalog, providers=providers,
                    router=Router(catalog, providers), authenticator=TrustedSocketAuthenticator(),
                    usage=DiscardingSink())
