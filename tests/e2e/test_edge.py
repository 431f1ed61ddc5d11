"""The HTTP edge over raw sockets: unread bodies cost no work, slow clients and too many
connections are cut off, parser errors answer in the envelope, files are private, a taken port is
one clear line."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import stat
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, REPO, Gateway, fake_config, free_port
from tests.fakes.openai_upstream import FakeOpenAI

ENVELOPE_KEYS = {"message", "type", "code", "param", "status"}
CPU_BOUND = 0.5  # seconds of gateway CPU one bomb may cost (inflating it all costs several)


def gzip_bomb(mebibytes: int = 8192) -> bytes:
    """A gzip stream of `mebibytes` MiB of zeros, about 1,000 times smaller. After a full flush
    the compressor starts afresh, so every further MiB compresses to the same bytes: one is
    compressed and repeated (the stream has no end; nothing here should read that far)."""
    zeros = bytes(2**20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    return first + again * (mebibytes - 1)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    body = gzip_bomb()
    assert 8_000_000 < len(body) < 9_000_000
    return body


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serving_pid(gw: Gateway) -> int:
    assert gw.proc is not None
    return gw.proc.pid  # with one worker, `parrotrouter serve` serves in its own process


def connect(gw: Gateway, timeout: float = 20) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed before a response: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed within the response body")
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def assert_envelope(status: int, headers: dict[str, str], body: bytes, want_status: int,
                    want_code: str | None = None) -> dict[str, Any]:
    assert status == want_status, body
    assert headers["content-type"].startswith("application/json"), headers
    err = json.loads(body)["error"]
    assert set(err) == ENVELOPE_KEYS and err["status"] == want_status and err["message"]
    if want_code is not None:
        assert err["code"] == want_code, err
    return dict(err)


def closed_by_peer(sock: socket.socket) -> bool:
    """Wait (up to the socket's timeout) for the peer to close: EOF or reset, with nothing more sent."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def request_head(method: str, path: str, length: int, key: str | None, gzip: bool = True) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway", "Content-Type: application/json",
             f"Content-Length: {length}"]
    if gzip:
        lines.append("Content-Encoding: gzip")
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    def send() -> None:
        with contextlib.suppress(OSError):  # the server may close first; its answer is what is checked
            sock.sendall(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


BOMB_CASES = [
    # (name, method, path, key, status, code)
    ("no key", "POST", "/v1/chat/completions", None, 401, "missing_api_key"),
    ("wrong key", "POST", "/v1/chat/completions", "pr-" + "x" * 43, 401, "invalid_api_key"),
    ("unknown route", "POST", "/v1/nothing-here", None, 404, "not_found"),
    ("wrong method", "PUT", "/v1/models", None, 405, "method_not_allowed"),
    ("over the limit", "POST", "/v1/chat/completions", MASTER_KEY, 413, "request_too_large"),
]


@pytest.mark.parametrize("case", BOMB_CASES, ids=[c[0] for c in BOMB_CASES])
def test_gzip_bomb_costs_no_cpu(gateway: Gateway, bomb: bytes, case: tuple[Any, ...]) -> None:
    """8 MB of gzip (8 GiB inflated): answered, and the connection closed, without inflating it
    (with a key: inflating stops at max_body_bytes)."""
    _, method, path, key, status, code = case
    pid = serving_pid(gateway)
    before = cpu_seconds(pid)
    with connect(gateway) as sock:
        sock.sendall(request_head(method, path, len(bomb), key))
        sender = send_in_background(sock, bomb)
        got, headers, body = read_response(sock)
        assert headers.get("connection", "").lower() == "close"
        assert closed_by_peer(sock)
        sender.join(20)
    time.sleep(0.2)  # the gateway's side of the close
    used = cpu_seconds(pid) - before
    assert_envelope(got, headers, body, status, code)
    assert used < CPU_BOUND, f"{used:.2f}s of CPU for a {len(bomb)} byte gzip body"
    assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200


def test_unread_body_is_not_awaited(gateway: Gateway, bomb: bytes) -> None:
    """The client sends 64 KiB of an announced 8 MB and stops: it gets its 401 and the connection
    is closed at once, not held while the rest is awaited (aiohttp's lingering close waits 10 s)."""
    with connect(gateway, timeout=4) as sock:
        sock.sendall(request_head("POST", "/v1/chat/completions", len(bomb), None) + bomb[:65536])
        assert_envelope(*read_response(sock), 401, "missing_api_key")
        assert closed_by_peer(sock)


PARSER_CASES = [
    ("bad request line", b"GARBAGE\r\n\r\n"),
    ("bad method", b"G(T /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("header line too long", b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"),
    ("duplicate content-length",
     b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"),
    ("bad header bytes", b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Bad\x01Name: y\r\n\r\n"),
    ("control byte in value", b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n"),
    ("too many headers", b"GET /v1/models HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n"),
]


@pytest.mark.parametrize("raw", [c[1] for c in PARSER_CASES], ids=[c[0] for c in PARSER_CASES])
def test_parser_errors_answer_the_envelope(gateway: Gateway, raw: bytes) -> None:
    with connect(gateway) as sock:
        sock.sendall(raw)
        status, headers, body = read_response(sock)
    assert status in (400, 431), body
    err = assert_envelope(status, headers, body, status)
    assert err["type"] == "invalid_request_error"
    assert len(err["message"]) < 200 and "\n" not in err["message"]


@pytest.fixture(scope="module")
def slow_gw(fake_upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("slow"), fake_config(fake_upstream, header_timeout=1, body_timeout=1),
                 env={"FAKE_UPSTREAM_KEY": "k"}).start()
    yield gw
    gw.stop()


def trickle_until_closed(sock: socket.socket, first: bytes, more: bytes, limit: float) -> float:
    """Send `first`, then `more` every 0.2 s until the gateway closes; seconds it took."""
    start = time.monotonic()
    sock.sendall(first)
    while time.monotonic() - start < limit:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable and closed_by_peer(sock):
            return time.monotonic() - start
        try:
            sock.sendall(more)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
    raise AssertionError(f"still open after {limit}s")


def test_trickled_headers_are_cut_off(slow_gw: Gateway) -> None:
    with connect(slow_gw) as sock:
        took = trickle_until_closed(sock, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n", limit=8)
    assert took >= 0.9, took  # header_timeout is 1 s; aiohttp alone waited 75 s


def test_silent_connection_is_closed(slow_gw: Gateway) -> None:
    with connect(slow_gw, timeout=8) as sock:
        assert closed_by_peer(sock)


def test_idle_keepalive_outlives_header_timeout(slow_gw: Gateway) -> None:
    """header_timeout counts from a request's first byte: a kept-alive connection may idle longer."""
    with connect(slow_gw) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_response(sock)
            assert status == 200
            time.sleep(2.2)


def test_trickled_body_gets_408(slow_gw: Gateway) -> None:
    with connect(slow_gw) as sock:
        sock.sendall(request_head("POST", "/v1/chat/completions", 200, MASTER_KEY, gzip=False) + b"{")
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(0.2):
                try:
                    sock.sendall(b" ")
                except OSError:
                    return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            assert_envelope(*read_response(sock), 408, "request_timeout")
        finally:
            stop.set()
            thread.join(5)


def test_connection_cap(make_gateway: Any) -> None:
    gw: Gateway = make_gateway(None, env={"PARROTROUTER_MAX_CONNECTIONS": "3"}).start()
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 10
        while len(held) < 3:  # the readiness probe's connection may take a moment to be let go
            sock = connect(gw)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_response(sock)
            if status == 200:
                held.append(sock)
            else:
                sock.close()
                assert time.monotonic() < deadline, "fewer than 3 connections admitted"
                time.sleep(0.1)
        with connect(gw) as refused:
            assert_envelope(*read_response(refused), 503, "service_unavailable")
            assert closed_by_peer(refused)
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:
            with connect(gw) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, _ = read_response(sock)
            if status == 200:
                break
            assert time.monotonic() < deadline, "no connection admitted after one closed"
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()
    assert "max_connections is 3" in gw.output()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_private(make_gateway: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    gw: Gateway = make_gateway(None, env={"PARROTROUTER_HOME": str(data)}).start()
    with gw.http() as http:
        assert http.post("/v1/keys", json={"name": "perm"}).status_code == 201
    db = data / "parrotrouter.db"
    files = [db, data / "parrotrouter.db-wal", data / "parrotrouter.db-shm"]
    assert mode(data) == 0o700
    assert [f.name for f in files if not f.exists()] == []
    assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o600" for f in files}
    assert "open to other users" not in gw.output()
    gw.stop()
    # As an earlier version left them: a 0755 directory, a 0644 database.
    data.chmod(0o755)
    db.chmod(0o644)
    gw.proc = None
    gw.start()
    with gw.http() as http:
        assert http.post("/v1/keys", json={"name": "perm2"}).status_code == 201
    assert {f.name: oct(mode(f)) for f in files if f.exists()} == {f.name: "0o600" for f in files if f.exists()}
    assert mode(db) == 0o600
    assert mode(data) == 0o755  # a directory that exists is the user's: warned about, not changed
    assert f"the data directory {data} is open to other users (mode 0755)" in gw.output()


@pytest.mark.parametrize("workers", [1, 2])
def test_port_in_use_is_one_line(tmp_path: Path, workers: int) -> None:
    port = free_port()
    with socket.socket() as taken:
        # SO_REUSEPORT as our workers set it: they could bind beside it; the check must not.
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARROTROUTER_")}
        env.update(PARROTROUTER_HOME=str(tmp_path / "home"), PARROTROUTER_LOCAL_MODELS="false")
        done = subprocess.run([sys.executable, "-m", "parrotrouter", "serve", "--port", str(port),
                               "--workers", str(workers)], capture_output=True, text=True, env=env,
                              timeout=60, cwd=REPO)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines
    assert "Traceback" not in done.stderr + done.stdout
    assert "pr-" not in done.stdout + done.stderr
    assert not (tmp_path / "home" / "master_key.json").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_that_cannot_listen_exits(tmp_path: Path, workers: int) -> None:
    """Past the command line's check (another process may take the port in between): a worker
    logs one error line and exits, and the supervisor does not restart it again and again."""
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARROTROUTER_")}
        env.update(PARROTROUTER_HOME=str(tmp_path / "home"), PARROTROUTER_LOCAL_MODELS="false",
                   PARROTROUTER_PORT=str(port), PARROTROUTER_WORKERS=str(workers), PARROTROUTER_MASTER_KEY=MASTER_KEY)
        done = subprocess.run([sys.executable, "-m", "parrotrouter.server"], capture_output=True, text=True,
                              env=env, timeout=90, cwd=REPO)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert errors and all(f"cannot listen on 127.0.0.1:{port}" in line for line in errors), done.stderr
    assert len(errors) <= workers, done.stderr  # one per worker at most (a slower one may be stopped first)
    assert "Traceback" not in done.stderr
