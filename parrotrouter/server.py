"""Run the gateway: one process, or a supervisor with N worker processes sharing the port
(SO_REUSEPORT) plus, when local models are configured, one model-host process that loads them
once for all workers (see `providers/model_host.py`)."""

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

import aiohttp
from aiohttp import web

from .api.app import create_app
from .bootstrap import (
    build_model_host_state,
    build_state,
    check_limits_backend,
    local_only,
    migrate_database,
    prepare,
)

log = logging.getLogger("parrotrouter")


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # e.g. Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _setup_process() -> None:
    logging.basicConfig(level=os.environ.get("PARROTROUTER_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    _install_uvloop()


def _freeze_heap() -> None:
    # Everything loaded so far (price tables, config) lives for the whole process: keep it out of
    # the collector's generations so full collections stay cheap on the request path.
    gc.collect()
    gc.freeze()
    # Requests allocate many short-lived objects; collecting the youngest generation every 700
    # allocations (the default) costs more than it frees at thousands of requests per second.
    gc.set_threshold(50_000, 20, 20)


def run_worker(cli: dict[str, Any], reuse_port: bool = False) -> None:
    """Serve in this process until SIGTERM/SIGINT; in-flight requests get `shutdown_timeout`."""
    _setup_process()
    prepared = prepare(cli)
    settings = prepared.settings
    app = create_app(build_state(prepared))
    _freeze_heap()
    web.run_app(
        app, host=settings.host, port=settings.port, reuse_port=reuse_port or None,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        print=None, handler_cancellation=True, shutdown_timeout=settings.shutdown_timeout,
    )


def run_model_host(cli: dict[str, Any], socket_path: str) -> None:
    """Serve the local models on a unix socket for the workers (no auth: the socket is 0600)."""
    _setup_process()
    prepared = prepare(cli)
    catalog = local_only(prepared.config.catalog)
    assert catalog is not None
    app = create_app(build_model_host_state(prepared, catalog))
    _freeze_heap()
    old = os.umask(0o177)
    try:
        web.run_app(app, path=socket_path, access_log=None, print=None, handler_cancellation=True,
                    shutdown_timeout=prepared.settings.shutdown_timeout)
    finally:
        os.umask(old)


def _wait_host_ready(socket_path: str, proc: Any, timeout: float = 120.0) -> None:
    async def probe() -> bool:
        try:
            async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as s, \
                    s.get("http://model-host/ready", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.is_alive():
            raise RuntimeError(f"the model host exited with {proc.exitcode}")
        if os.path.exists(socket_path) and asyncio.run(probe()):
            return
        time.sleep(0.1)
    raise RuntimeError("the model host did not become ready")


class Supervisor:
    """Start the processes, restart any that die, forward SIGTERM/SIGINT, wait for them to drain."""

    def __init__(self, cli: dict[str, Any], workers: int, socket_path: str | None) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.cli = cli
        self.workers = workers
        self.socket_path = socket_path
        self.host: Any = None
        self.procs: list[Any] = []
        self.stopping = False

    def _start_host(self) -> Any:
        assert self.socket_path is not None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        proc = self.ctx.Process(target=run_model_host, args=(self.cli, self.socket_path), name="model-host")
        proc.start()
        _wait_host_ready(self.socket_path, proc)
        return proc

    def _start_worker(self) -> Any:
        cli = dict(self.cli, model_host=self.socket_path) if self.socket_path else self.cli
        proc = self.ctx.Process(target=run_worker, args=(cli, True), name="worker")
        proc.start()
        return proc

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True
        for p in [*self.procs, self.host]:
            if p is not None and p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if self.socket_path:
            self.host = self._start_host()
        self.procs = [self._start_worker() for _ in range(self.workers)]
        while not self.stopping:
            time.sleep(0.5)
            if self.host is not None and not self.host.is_alive() and not self.stopping:
                log.error("the model host exited with %s; restarting it", self.host.exitcode)
                self.host = self._start_host()
            for i, p in enumerate(self.procs):
                if not p.is_alive() and not self.stopping:
                    log.error("worker %s exited with %s; restarting it", p.pid, p.exitcode)
                    self.procs[i] = self._start_worker()
        for p in [*self.procs, self.host]:
            if p is not None:
                p.join()
        return 0


def main_serve(cli: dict[str, Any]) -> int:
    prepared = prepare(cli)
    migrate_database(prepared)
    check_limits_backend(prepared)
    workers = prepared.settings.workers
    if workers <= 1:
        run_worker(cli)
        return 0
    has_local = local_only(prepared.config.catalog) is not None
    socket_path = str(prepared.home.path / "model-host.sock") if has_local else None
    return Supervisor(cli, workers, socket_path).run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_serve({}))
