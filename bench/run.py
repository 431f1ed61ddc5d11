#!/usr/bin/env python3
"""Gateway overhead benchmark: requests/s and added latency against a fast mock upstream.

Starts the mock upstream (the anchor benchmark's nginx mock when ../shared/bench is present and
nginx has its js module, else bench/mock_upstream.py) and one gateway per variant, side by side,
then measures with wrk in interleaved rounds (the mock directly, then every variant in rotated
order, for each scenario) and reports medians: on a noisy machine, runs minutes apart differ
more than the variants do.

    python bench/run.py                      # default variants (below)
    python bench/run.py stateless key        # a subset
    ROUNDS=10 DURATION=4 CONCS="1 64" STREAM_CONCS=16 PIN=0 python bench/run.py

Variants (same mock, same run):
    stateless  bench/mock-stateless.yaml: no keys, credits or ledger (master key only)
    master     bench/mock.yaml with the master key: ledger on, no credit reservation
    key        bench/mock.yaml with an ordinary key holding credits: auth lookup, permission
               checks, credit reservation and settlement, ledger
    limits-memory  as `key`, the key with a requests-per-minute limit (memory storage)
    limits-redis   as `key`, the limit counted in Redis (bench/mock-redis.yaml)
    tpm-redis      as limits-redis, plus a tokens-per-minute limit (prompt counted, reconciled)
    on, off        as `key`, with metrics on (the default) or off (PARROTROUTER_METRICS=false):
                   `python bench/run.py on off`; the report then compares each to `off`

A variant may name another checkout of the code as `VARIANT@PATH` (e.g. `key@../base`, a `git
worktree` of an older commit): that gateway runs that checkout's code with this checkout's bench
configs, so a code change is measured against its parent in the same run.

Compare ratios within one run: the machine is noisy.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "bench"
KEY = "pr-bench-0123456789abcdefghijklmnopqrstuvwxyz"
DURATION = int(os.environ.get("DURATION", "4"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
CONCS = [int(c) for c in os.environ.get("CONCS", "1 64").split()]
STREAM_CONCS = [int(c) for c in os.environ.get("STREAM_CONCS", "16").split()]
PORT = int(os.environ.get("PORT", "8000"))  # variants listen on PORT, PORT+1, ...
# The mock's port (the configs name 18000; another port is written into copies of them), so that
# two benchmarks can run on one machine.
MOCK_PORT = int(os.environ.get("MOCK_PORT", "18000"))
# With PIN=1 (the default on machines with 2+ CPUs) each gateway runs on the last CPU, wrk and the
# mock on the others: a gateway's own threads (the ledger writer's included) share one core, as
# when every core runs a worker, and it does not fight the load generator for CPU time.
_CPUS = sorted(os.sched_getaffinity(0))
PIN = os.environ.get("PIN", "1") == "1" and len(_CPUS) >= 2
GATEWAY_CPUS = ["taskset", "-c", str(_CPUS[-1])] if PIN else []
LOAD_CPUS = ["taskset", "-c", ",".join(map(str, _CPUS[:-1]))] if PIN else []
MOCK = f"http://127.0.0.1:{MOCK_PORT}/v1"


def wait(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url, headers=headers, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_mock(run_dir: Path) -> subprocess.Popen[bytes]:
    if (SHARED / "mock" / "nginx-mock.conf").exists() and shutil.which("nginx") and \
            Path("/usr/lib/nginx/modules/ngx_http_js_module.so").exists():
        for name in ("mock-tmp",):
            (run_dir / name).mkdir(exist_ok=True)
        conf = (SHARED / "mock" / "nginx-mock.conf").read_text()
        conf = conf.replace("@BENCH@", str(SHARED)).replace("@RUN@", str(run_dir)).replace("@DELAY@", "0").replace(
            "127.0.0.1:18000", f"127.0.0.1:{MOCK_PORT}")
        (run_dir / "mock.conf").write_text(conf)
        (run_dir / "mock.js").write_text((SHARED / "mock" / "mock.js").read_text().replace("@BENCH@", str(SHARED)))
        proc = subprocess.Popen([*LOAD_CPUS, "nginx", "-p", str(run_dir), "-c", str(run_dir / "mock.conf")])
    else:
        proc = subprocess.Popen([*LOAD_CPUS, sys.executable, str(HERE / "mock_upstream.py"), "--port", str(MOCK_PORT)])
    wait(MOCK + "/models")
    return proc


def wrk(url: str, conc: int, stream: bool, headers: dict[str, str]) -> tuple[float, float, int]:
    """requests/s, p50 latency in ms, requests completed."""
    lua = Path(tempfile.mkdtemp()) / "bench.lua"
    body = {"model": "gpt-4o-mini", "stream": stream, "temperature": 0.2, "max_tokens": 300,
            "messages": [{"role": "system", "content": "You are a careful assistant."},
                         {"role": "user", "content": "Outline gateway timeouts in a short numbered list. " * 8}]}
    import json

    hdrs = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                   f'wrk.headers["Content-Type"] = "application/json"\n{hdrs}')
    out = subprocess.run([*LOAD_CPUS, "wrk", "-t1", f"-c{conc}", f"-d{DURATION}s", "--latency", "-s", str(lua),
                          url + "/chat/completions"], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert p50 is not None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} error responses from {url}:\n{out}")
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, float(p50.group(1)) * scale, done


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (the ledger writer's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


HUGE = 10**9  # limits that never refuse: the cost of checking them is what is measured
VARIANTS: dict[str, tuple[str, dict[str, int] | None]] = {
    "stateless": ("mock-stateless.yaml", None),
    "master": ("mock.yaml", None),
    "key": ("mock.yaml", {}),
    "limits-memory": ("mock.yaml", {"max_requests_per_minute": HUGE}),
    "limits-redis": ("mock-redis.yaml", {"max_requests_per_minute": HUGE}),
    "tpm-redis": ("mock-redis.yaml", {"max_requests_per_minute": HUGE, "max_tokens_per_minute": HUGE}),
}
DEFAULT_VARIANTS = ["stateless", "master", "key", "limits-memory", "limits-redis"]
# Settings a variant runs with (environment), beside its config file.
VARIANT_ENV: dict[str, dict[str, str]] = {
    "on": {"PARROTROUTER_METRICS": "true"},
    "off": {"PARROTROUTER_METRICS": "false"},
}
VARIANTS.update({name: ("mock.yaml", {}) for name in VARIANT_ENV})


def ordinary_key(port: int, limits: dict[str, int]) -> str:
    """Create a key with plenty of credits through the admin API."""
    resp = httpx.post(f"http://127.0.0.1:{port}/v1/keys", headers={"Authorization": f"Bearer {KEY}"},
                      json={"name": "bench", "credits": "100000",
                            "permissions": {"models": ["gpt-4o-mini"], **limits}})
    resp.raise_for_status()
    return str(resp.json()["key"])


def scenarios() -> list[tuple[str, int, bool]]:
    return [(f"ns-c{c}", c, False) for c in CONCS] + [(f"st-c{c}", c, True) for c in STREAM_CONCS]


def config_path(config: str, home: Path) -> Path:
    """The variant's config file, naming the mock's port (a copy in `home` unless it is 18000)."""
    if MOCK_PORT == 18000:
        return HERE / config
    path = home / config
    path.write_text((HERE / config).read_text().replace("127.0.0.1:18000", f"127.0.0.1:{MOCK_PORT}"))
    return path


def start_gateway(variant: str, port: int) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    name, _, checkout = variant.partition("@")
    config, key_limits = VARIANTS[name]
    code = Path(checkout).resolve() if checkout else REPO  # `python -m` imports from its cwd first
    home = Path(tempfile.mkdtemp(prefix="pr-home-"))
    env = {**os.environ, "PARROTROUTER_HOME": str(home), "PARROTROUTER_MASTER_KEY": KEY, **VARIANT_ENV.get(name, {})}
    gw = subprocess.Popen([*GATEWAY_CPUS, sys.executable, "-m", "parrotrouter", "serve", "--config",
                           str(config_path(config, home)),
                           "--port", str(port)], env=env, cwd=code, stdout=subprocess.DEVNULL)
    wait(f"http://127.0.0.1:{port}/ready")
    token = ordinary_key(port, key_limits) if key_limits is not None else KEY
    return gw, {"Authorization": f"Bearer {token}"}


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian package 'wrk', or ../shared/bench/run-anchors.sh --setup)")
    variants = sys.argv[1:] or DEFAULT_VARIANTS
    run_dir = Path(tempfile.mkdtemp(prefix="pr-bench-"))
    mock = start_mock(run_dir)
    gateways: list[subprocess.Popen[bytes]] = []
    # results[target][scenario] = [(rps, p50, CPU µs per request), ...], one entry per round
    results: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    try:
        # (name, url, headers, gateway process): all side by side, so each round measures every one
        direct = ("direct (mock)", MOCK, {}, None)
        targets: list[tuple[str, str, dict[str, str], subprocess.Popen[bytes] | None]] = []
        for i, variant in enumerate(variants):
            gw, headers = start_gateway(variant, PORT + i)
            gateways.append(gw)
            targets.append((variant, f"http://127.0.0.1:{PORT + i}/v1", headers, gw))
        for _, url, headers, _ in [direct, *targets]:
            wrk(url, 16, False, headers)  # warm-up
        for r in range(ROUNDS):
            for scenario, conc, stream in scenarios():
                order = targets[r % len(targets):] + targets[:r % len(targets)]  # no variant always first
                for name, url, headers, proc in [direct, *order]:
                    cpu = cpu_seconds(proc.pid) if proc else 0.0
                    rps, p50, done = wrk(url, conc, stream, headers)
                    cpu_us = (cpu_seconds(proc.pid) - cpu) / done * 1e6 if proc else 0.0
                    results.setdefault(name, {}).setdefault(scenario, []).append((rps, p50, cpu_us))
                    print(f"  round {r + 1} {name:16} {scenario:7} {rps:9.0f} req/s   p50 {p50:7.2f} ms   "
                          f"CPU {cpu_us:6.0f} µs/req", flush=True)
    finally:
        for gw in gateways:
            gw.send_signal(signal.SIGTERM)
            gw.wait()
        mock.terminate()
        mock.wait()
    report(results)


def report(results: dict[str, dict[str, list[tuple[float, float, float]]]]) -> None:
    """Medians over the rounds, and their ratios to `stateless` (else `off`). CPU per
    request (all the gateway's threads) is the steadier figure on a noisy machine: it is what
    limits throughput when every core runs a worker."""
    direct = results["direct (mock)"]
    base_name = next((n for n in results if n.partition("@")[0] == "stateless"),
                     next((n for n in results if n.partition("@")[0] == "off"), None))
    base = results[base_name] if base_name else None
    pinned = f"gateways pinned to {GATEWAY_CPUS[-1]}, wrk and mock to {LOAD_CPUS[-1]}" if PIN else "nothing pinned"
    print(f"\nmedians of {ROUNDS} interleaved rounds of {DURATION} s; {pinned}")
    print(f"| variant | scenario | req/s | p50 ms | added p50 ms | req/s vs {base_name} | CPU µs/req | "
          f"{base_name} CPU / this CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, res in results.items():
        for scenario, runs in res.items():
            rps = statistics.median(x[0] for x in runs)
            p50 = statistics.median(x[1] for x in runs)
            cpu = statistics.median(x[2] for x in runs)
            is_direct = name.startswith("direct")
            added = "-" if is_direct else f"{p50 - statistics.median(x[1] for x in direct[scenario]):.2f}"
            ratio = cpu_ratio = "-"
            if base and not is_direct:
                ratio = f"{rps / statistics.median(x[0] for x in base[scenario]):.1%}"
                cpu_ratio = f"{statistics.median(x[2] for x in base[scenario]) / cpu:.1%}"
            print(f"| {name} | {scenario} | {rps:.0f} | {p50:.2f} | {added} | {ratio} | "
                  f"{'-' if is_direct else f'{cpu:.0f}'} | {cpu_ratio} |")


if __name__ == "__main__":
    main()
