"""The `log_level` setting reaches the server's processes (it was once declared and never read)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import Gateway


def _malformed_request(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        assert b" 400 " in sock.recv(4096).split(b"\r\n", 1)[0]


def test_the_log_level_is_honoured(tmp_path: Path) -> None:
    """Malformed requests are logged at debug level: seen with --log-level debug, not by default."""
    seen = {}
    for level in ("debug", None):
        args = ["--log-level", level] if level else []
        gw = Gateway(tmp_path / (level or "default"), None, env={"PARROTROUTER_ACCOUNTING": "false"},
                     args=args).start()
        try:
            _malformed_request(gw.port)
        finally:
            gw.stop()
        seen[level] = "malformed request from" in gw.output()
    assert seen == {"debug": True, None: False}
