from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...auth.principal import api_key_token, bearer_token
from ...errors import NotFound, PermissionDenied
from ..request import CONTEXT_KEY, STATE_KEY

if TYPE_CHECKING:
    from ...observe.metrics import ProcessGauges

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GAUGES_KEY: web.AppKey[ProcessGauges] = web.AppKey("parrotrouter_metrics_gauges")


def _from_trusted_network(request: web.Request) -> bool:
    networks = request.app[STATE_KEY].settings.metrics_public_networks
    if not networks or request.remote is None:
        return False
    try:
        address = ipaddress.ip_address(request.remote)
    except ValueError:  # a unix socket
        return False
    return trusted(address, networks)


def trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
            networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether a peer is in one of the networks; an IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`, a
    dual-stack listener's IPv4 client) counts as its IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _check_access(request: web.Request) -> None:
    """The master key, the metrics token or a trusted network; else 401 (no or a bad key) or 403."""
    if _from_trusted_network(request):
        return
    state = request.app[STATE_KEY]
    headers = request.headers
    token = bearer_token(headers.get("Authorization")) or api_key_token(headers.get("x-api-key"))
    wanted = state.settings.metrics_token
    # A header aiohttp decoded with surrogateescape (non-UTF-8 bytes) has surrogates: encode them
    # back to the bytes sent rather than fail; a wrong token goes on to the authenticator's 401.
    if token is not None and wanted is not None and hmac.compare_digest(
            token.encode("utf-8", "surrogateescape"), wanted.reveal().encode()):
        return
    principal = state.authenticator.authenticate(token)  # 401 for a missing or unknown key
    if not principal.is_master:
        raise PermissionDenied("Only the master key or the metrics token may read /metrics.")


async def scrape(request: web.Request) -> web.Response:
    gauges = request.app.get(GAUGES_KEY)
    if gauges is None:  # the `metrics` setting is off
        raise NotFound("Unknown route: metrics are off on this gateway (the `metrics` setting).")
    _check_access(request)
    gauges.refresh()  # this process's gauges exact; the others' at most a second old
    metrics = gauges.metrics
    body = await asyncio.to_thread(metrics.exposition) if metrics.directory else metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    """With the `metrics` setting: the route, the process gauges, and the count of requests refused
    before the serving core. The model host (no observer) keeps only its local model queue gauges."""
    state = app[STATE_KEY]
    app.router.add_get("/metrics", scrape)  # always there (the OpenAPI document lists it): 404 when off
    if not state.settings.metrics:
        return
    from ...observe.metrics import Metrics, MetricsObserver, ProcessGauges, local_queues, multiprocess_dir

    observer = next((o for o in state.observers.observers if isinstance(o, MetricsObserver)), None)
    if observer is None:
        if multiprocess_dir() is not None and local_queues(state):
            _run_gauges(app, ProcessGauges(Metrics(), state, worker=False))
        return
    gauges = ProcessGauges(observer.metrics, state, worker=True, flush=observer.flush)
    app[GAUGES_KEY] = gauges
    _run_gauges(app, gauges)
    refused = observer.metrics.refused
    children: dict[tuple[str, str], Any] = {}

    async def count_refused(request: web.Request, response: web.StreamResponse) -> None:
        """Error answers the serving core never saw (it counts its own), by route template."""
        status = response.status
        if status < 400:
            return
        ctx = request.get(CONTEXT_KEY)
        if ctx is not None and ctx.recorded:
            return
        resource = request.match_info.route.resource
        key = (resource.canonical if resource is not None else "unmatched", f"{status // 100}xx")
        child = children.get(key)
        if child is None:
            child = children[key] = refused.labels(*key)
        child.inc()

    app.on_response_prepare.append(count_refused)


def _run_gauges(app: web.Application, gauges: ProcessGauges) -> None:
    async def start(app: web.Application) -> None:
        await gauges.start()

    async def stop(app: web.Application) -> None:
        await gauges.aclose()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
