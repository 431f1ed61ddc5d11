#!/usr/bin/env python3
"""Memory soak: the gateway's RSS under steady load at ~70% of its peak, sampled every INTERVAL s.

Starts the mock upstream and one gateway (variants as in bench/run.py, whose helpers it uses),
finds the peak requests/s with wrk (c=64, PEAK_S seconds), then drives load at LOAD (default 70%)
of that peak for DURATION_S seconds, in INTERVAL-second wrk runs paced by the Lua `delay()` hook
(recalibrated after each run from the rate it reached), and reads the gateway's RSS after each.
Prints the curve (time, RSS MB, req/s) and the verdict: after WARMUP_S, every sample within +-5%
of their median.

    python bench/soak.py                  # variant `key`, 600 s
    DURATION_S=120 python bench/soak.py local
    MOCK_PORT=18130 PORT=8230 python bench/soak.py key@/work/main

Variants: those of bench/run.py, plus `local`: as `key`, with the local-model extra's providers
on (`env_providers: true`, `server: {local_models: true}`) and no request made to them.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    GATEWAY_CPUS,
    KEY,
    LOAD_CPUS,
    MOCK,
    MOCK_PORT,
    PORT,
    REPO,
    VARIANTS,
    config_path,
    ordinary_key,
    wait,
)

DURATION_S = int(os.environ.get("DURATION_S", "600"))
INTERVAL = int(os.environ.get("INTERVAL", "10"))
PEAK_S = int(os.environ.get("PEAK_S", "5"))
LOAD = float(os.environ.get("LOAD", "0.7"))
WARMUP_S = int(os.environ.get("WARMUP_S", "60"))
CONNS = int(os.environ.get("CONNS", "16"))  # connections of the paced load
TOLERANCE = 0.05


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def start_mock() -> subprocess.Popen[bytes]:
    """bench/mock_upstream.py on MOCK_PORT (run.py's nginx mock listens on the shared config's port)."""
    proc = subprocess.Popen([*LOAD_CPUS, sys.executable, str(HERE / "mock_upstream.py"), "--port", str(MOCK_PORT)])
    wait(MOCK + "/models")
    return proc


def start_gateway(variant: str, port: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    name, _, checkout = variant.partition("@")
    local = name == "local"
    config, key_limits = VARIANTS["key" if local else name]
    code = Path(checkout).resolve() if checkout else REPO  # `python -m` imports from its cwd first
    home = Path(tempfile.mkdtemp(prefix="pr-soak-"))
    path = config_path(config, home)
    if local:
        text = path.read_text().replace("env_providers: false", "env_providers: true")
        path = home / "local.yaml"
        path.write_text(text.replace("local_models: false", "local_models: true"))
    env = {**os.environ, "PARROTROUTER_HOME": str(home), "PARROTROUTER_MASTER_KEY": KEY}
    gw = subprocess.Popen([*GATEWAY_CPUS, sys.executable, "-m", "parrotrouter", "serve", "--config", str(path),
                           "--port", str(port)], env=env, cwd=code, stdout=subprocess.DEVNULL,
                          stderr=(home / "gateway.log").open("wb"))
    wait(f"http://127.0.0.1:{port}/ready", timeout=120)
    token = ordinary_key(port, key_limits) if key_limits is not None else KEY
    return gw, {"Authorization": f"Bearer {token}"}


def lua(headers: dict[str, str], delay_ms: int | None) -> Path:
    import json

    body = {"model": "gpt-4o-mini", "stream": False, "temperature": 0.2, "max_tokens": 300,
            "messages": [{"role": "system", "content": "You are a careful assistant."},
                         {"role": "user", "content": "Outline gateway timeouts in a short numbered list. " * 8}]}
    hdrs = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    pace = f"function delay()\n  return {delay_ms}\nend\n" if delay_ms is not None else ""
    path = Path(tempfile.mkdtemp()) / "soak.lua"
    path.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                    f'wrk.headers["Content-Type"] = "application/json"\n{hdrs}{pace}')
    return path


def wrk(url: str, conns: int, seconds: int, script: Path) -> tuple[float, float]:
    """requests/s and mean latency in ms of one wrk run; error responses abort the soak."""
    out = subprocess.run([*LOAD_CPUS, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", str(script),
                          url + "/chat/completions"], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:  # (wrk counts a connection pausing in `delay` at the end as a timeout)
        raise RuntimeError(f"errors from {url}:\n{out}")
    lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    assert lat is not None
    return rps, float(lat.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[lat.group(2)]


def main() -> None:
    variant = sys.argv[1] if len(sys.argv) > 1 else "key"
    mock = start_mock()
    gw, headers = start_gateway(variant, PORT)
    url = f"http://127.0.0.1:{PORT}/v1"
    try:
        print(f"{variant}: RSS at start {rss_mb(gw.pid):.1f} MB", flush=True)
        wrk(url, 16, 2, lua(headers, None))  # warm-up
        peak, _ = wrk(url, 64, PEAK_S, lua(headers, None))
        target = LOAD * peak
        print(f"peak {peak:.0f} req/s (c=64); soak at {target:.0f} req/s, {CONNS} connections, "
              f"{DURATION_S} s; RSS after warm-up and peak {rss_mb(gw.pid):.1f} MB", flush=True)
        # each connection: one request, then `delay` ms of pause
        _, latency = wrk(url, CONNS, 2, lua(headers, None))
        delay = max(0.0, CONNS * 1000 / target - latency)
        curve: list[tuple[int, float, float]] = []
        began = time.monotonic()
        print("| t s | RSS MB | req/s | delay ms |\n|---:|---:|---:|---:|", flush=True)
        while time.monotonic() - began < DURATION_S:
            rps, latency = wrk(url, CONNS, INTERVAL, lua(headers, round(delay)))
            sample = (round(time.monotonic() - began), rss_mb(gw.pid), rps)
            curve.append(sample)
            print(f"| {sample[0]} | {sample[1]:.1f} | {sample[2]:.0f} | {round(delay)} |", flush=True)
            if rps > 0:  # recalibrate: the pause that gives the target rate at this latency
                delay = max(0.0, delay + (CONNS * 1000 / target - CONNS * 1000 / rps))
        report(curve, target)
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait()
        mock.terminate()
        mock.wait()


def report(curve: list[tuple[int, float, float]], target: float) -> None:
    steady = [rss for t, rss, _ in curve if t > WARMUP_S] or [curve[-1][1]]
    mid = statistics.median(steady)
    low, high = min(steady), max(steady)
    rates = [rps for t, _, rps in curve if t > WARMUP_S] or [curve[-1][2]]
    flat = high <= mid * (1 + TOLERANCE) and low >= mid * (1 - TOLERANCE)
    print(f"\nafter {WARMUP_S} s of warm-up: RSS min {low:.1f} / median {mid:.1f} / max {high:.1f} MB "
          f"({(low / mid - 1):+.1%} .. {(high / mid - 1):+.1%}); first {steady[0]:.1f}, last {steady[-1]:.1f} MB; "
          f"load median {statistics.median(rates):.0f} req/s (target {target:.0f})")
    print(f"verdict: {'FLAT' if flat else 'NOT FLAT'} (every sample within +-{TOLERANCE:.0%} of the median)")


if __name__ == "__main__":
    main()
