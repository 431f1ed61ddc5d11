"""Run the gateway: one process, or a supervisor with N worker processes sharing the port."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import sys
import time
from typing import Any

from aiohttp import web

from .api.app import create_app
from .bootstrap import build_state, prepare

log = logging.getLogger("parrotrouter")


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # e.g. Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(cli: dict[str, Any], reuse_port: bool = False) -> None:
    """Serve in this process until SIGTERM/SIGINT; in-flight requests get `shutdown_timeout`."""
    logging.basicConfig(level=os.environ.get("PARROTROUTER_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    _install_uvloop()
    prepared = prepare(cli)
    settings = prepared.settings
    state = build_state(prepared)
    app = create_app(state)
    # Everything loaded so far (price tables, config) lives for the whole process: keep it out of
    # the collector's generations so full collections stay cheap on the request path.
    gc.collect()
    gc.freeze()
    web.run_app(
        app, host=settings.host, port=settings.port, reuse_port=reuse_port or None,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        print=None, handler_cancellation=True, shutdown_timeout=settings.shutdown_timeout,
    )


def _spawn(ctx: Any, cli: dict[str, Any]) -> Any:
    proc = ctx.Process(target=run_worker, args=(cli, True), daemon=False)
    proc.start()
    return proc


def run_workers(cli: dict[str, Any], workers: int) -> int:
    """Supervisor: start `workers` processes bound with SO_REUSEPORT, restart any that die,
    forward SIGTERM/SIGINT and wait for them to drain."""
    ctx = multiprocessing.get_context("spawn")
    procs = [_spawn(ctx, cli) for _ in range(workers)]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(0.5)
        for i, p in enumerate(procs):
            if not p.is_alive() and not stopping:
                log.error("worker %s exited with %s; restarting it", p.pid, p.exitcode)
                procs[i] = _spawn(ctx, cli)
    for p in procs:
        p.join()
    return 0


def main_serve(cli: dict[str, Any]) -> int:
    workers = prepare(cli).settings.workers
    if workers <= 1:
        run_worker(cli)
        return 0
    return run_workers(cli, workers)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_serve({}))
