"""Run the gateway: one process, or a supervisor with N worker processes sharing the port
(SO_REUSEPORT) plus, when local models are configured, one model-host process that loads them
once for all workers (see `providers/model_host.py`)."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .api.app import create_app
from .api.edge import ListenError, serve
from .bootstrap import (
    build_model_host_state,
    build_state,
    check_limits_backend,
    local_only,
    migrate_database,
    prepare,
)
from .observe import multiproc
from .observe.log_format import formatter
from .settings import Settings

log = logging.getLogger("parrotrouter")
EXIT_CANNOT_LISTEN = 3  # a worker could not open the port: restarting it would not help


def listen_problem(host: str, port: int) -> str | None:
    """Why the gateway could not listen on host:port (e.g. another process holds it), or None.

    Binds a probe socket without SO_REUSEPORT: the workers share the port through it, and so would
    another process (same user) that set it, so any socket already on the port counts as taken."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror}"
    for family, kind, proto, _, address in dict.fromkeys(infos):
        with socket.socket(family, kind, proto) as probe:
            # As the server does: a connection of an earlier run in TIME_WAIT is no conflict.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                hint = " (another process is using it; choose another with --port)" \
                    if exc.errno == errno.EADDRINUSE else ""
                return f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}"
    return None


def _raise_fd_limit(max_connections: int) -> None:
    """Each connection is a file descriptor (and a proxied one a second, upstream): lift the soft
    limit, often 1024, toward what max_connections needs."""
    try:
        import resource
    except ImportError:  # e.g. Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * max_connections + 256
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < wanted:
        log.warning("max_connections is %d but this process may open only %d files (ulimit -n)",
                    max_connections, new)


# Libraries of this process that log SQL parameters or signed requests below these levels: an
# INSERT of a stored prompt (aiosqlite's "executing" line at DEBUG; SQLAlchemy's echo at INFO), a
# SigV4 canonical request with its security token (botocore at DEBUG). Never that low, whatever
# `log_level` says.
QUIET_LOGGERS = {"aiosqlite": logging.INFO, "sqlalchemy.engine": logging.WARNING, "botocore": logging.INFO}


def _setup_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at the `log_level` setting, as `log_format` says (this process's loggers;
    libraries' included: observe/log_format.py)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(handlers=[handler])
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(root.level, floor))


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # e.g. Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _setup_process(settings: Settings) -> None:
    _setup_logging(settings.log_level, settings.log_format)
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
    prepared = prepare(cli)
    _setup_process(prepared.settings)
    settings = prepared.settings
    _raise_fd_limit(settings.max_connections)
    app = create_app(build_state(prepared))
    _freeze_heap()
    access_log = logging.getLogger("aiohttp.access") if settings.access_log else None
    try:
        asyncio.run(serve(app, settings, reuse_port=reuse_port, access_log=access_log))
    except ListenError as exc:
        log.error("%s", exc)
        sys.exit(EXIT_CANNOT_LISTEN)


def run_model_host(cli: dict[str, Any], socket_path: str) -> None:
    """Serve the local models on a unix socket for the workers (no auth: the socket is 0600)."""
    prepared = prepare(cli)
    _setup_process(prepared.settings)
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

    def __init__(self, cli: dict[str, Any], workers: int, socket_path: str | None,
                 metrics_dir: Path | None = None) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.cli = cli
        self.workers = workers
        self.socket_path = socket_path
        self.metrics_dir = metrics_dir  # every process's metrics files (PROMETHEUS_MULTIPROC_DIR)
        self.host: Any = None
        self.procs: list[Any] = []
        self.stopping = False
        self.exit_code = 0

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
                multiproc.mark_dead(self.host.pid, self.metrics_dir)
                self.host = self._start_host()
            for i, p in enumerate(self.procs):
                if p.exitcode == EXIT_CANNOT_LISTEN and not self.stopping:
                    self._stop(signal.SIGTERM, None)
                    self.exit_code = 1
                elif not p.is_alive() and not self.stopping:
                    log.error("worker %s exited with %s; restarting it", p.pid, p.exitcode)
                    multiproc.mark_dead(p.pid, self.metrics_dir)
                    self.procs[i] = self._start_worker()
        for p in [*self.procs, self.host]:
            if p is not None:
                p.join()
        return self.exit_code


def _migrate_apart(prepared: Any) -> bool:
    """Bring the schema up to date in a forked child, so the serving process (the only one, with
    one worker) never holds alembic and the migrations (~11 MB resident for good); in this
    process when forking is not safe (threads running) or possible. False: the migration failed
    (the child logged why)."""
    if not prepared.settings.accounting:
        return True
    import threading

    if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
        return _migrated(prepared)
    child = multiprocessing.get_context("fork").Process(target=_migrate_child, args=(prepared,), name="migrate")
    child.start()
    child.join()
    return child.exitcode == 0


def _migrated(prepared: Any) -> bool:
    """Migrate; False, with one line saying why (no traceback, no database URL: it may hold a
    password), when that failed."""
    try:
        migrate_database(prepared)
    except Exception as exc:
        log.error("the database schema could not be brought up to date (is the database reachable?): %s: %s",
                  type(exc).__name__, exc)
        return False
    return True


def _migrate_child(prepared: Any) -> None:
    if not _migrated(prepared):
        sys.exit(1)


def main_serve(cli: dict[str, Any]) -> int:
    prepared = prepare(cli)
    _setup_logging(prepared.settings.log_level, prepared.settings.log_format)
    exposed = prepared.home.exposure()
    if exposed:
        log.warning("%s", exposed)
    workers = prepared.settings.workers
    if not _migrate_apart(prepared):
        return 1
    check_limits_backend(prepared)
    if workers <= 1:
        multiproc.use_directory(None)  # one process: its metrics in memory
        run_worker(cli)
        return 0
    has_local = local_only(prepared.config.catalog) is not None
    socket_path = str(prepared.home.path / "model-host.sock") if has_local else None
    metrics_dir = multiproc.fresh_directory(prepared.home.path) if prepared.settings.metrics else None
    multiproc.use_directory(metrics_dir)  # the spawned processes inherit it
    try:
        return Supervisor(cli, workers, socket_path, metrics_dir).run()
    finally:
        multiproc.remove(metrics_dir)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_serve({}))
