"""The supervisor's side of multiprocess metrics: one fresh directory per server, shared by its
workers and model host (never by two servers), dead processes' live gauges removed from it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def fresh_directory(home: Path) -> Path:
    """A new, empty, private (0700) directory in `home`/metrics, named after this process; the
    directories of servers no longer running are removed first."""
    parent = home / "metrics"
    parent.mkdir(mode=0o700, exist_ok=True)
    for old in parent.iterdir():
        pid, _, _ = old.name.partition("-")
        if old.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=parent))


def use_directory(path: Path | None) -> None:
    """Make this process and the ones it starts write their metrics to `path` (None: in memory,
    whatever the environment said: a directory inherited from elsewhere may be another server's)."""
    if path is None:
        os.environ.pop(MULTIPROC_ENV, None)
    else:
        os.environ[MULTIPROC_ENV] = str(path)


def mark_dead(pid: int | None, path: Path | None) -> None:
    """A process exited: its live gauges (open streams, backlog...) no longer count."""
    if pid is None or path is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(path)
