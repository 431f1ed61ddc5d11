#!/usr/bin/env python3
"""Instructions per request, counted by valgrind's callgrind: repeatable where wall-clock numbers
are not (the same code, inputs and environment give the same count whatever else the machine does).

Each variant's gateway runs under `valgrind --tool=callgrind --instr-atstart=no`; after a warm-up,
counting is switched on (`callgrind_control -i on`) around N requests sent one at a time, the
gateway's own threads included, and the count is divided by N.

    python bench/callgrind.py stateless key                     # the current checkout
    python bench/callgrind.py stateless@../before stateless     # another checkout's code, same configs
    N=300 STREAM=1 python bench/callgrind.py key                # streamed requests

Variants as in bench/run.py (bare, stateless, master, key, full, ...; VARIANT@PATH for another
checkout).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (bench/run.py: mock, variants, keys)

N = int(os.environ.get("N", "300"))
WARMUP = int(os.environ.get("WARMUP", "100"))
STREAM = os.environ.get("STREAM", "0") == "1"
PORT = int(os.environ.get("CALLGRIND_PORT", "8100"))


def _count(out_dir: Path, pid: int) -> int:
    total = 0
    for dump in out_dir.glob(f"callgrind.out.{pid}*"):
        match = re.search(r"^totals:\s*(\d+)", dump.read_text(errors="replace"), re.MULTILINE)
        if match:
            total += int(match.group(1))
    return total


def measure(variant: str) -> float:
    name, _, checkout = variant.partition("@")
    home = Path(tempfile.mkdtemp(prefix="pr-home-"))
    out_dir = Path(tempfile.mkdtemp(prefix="pr-cg-"))
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no",
                f"--callgrind-out-file={out_dir}/callgrind.out.%p", sys.executable]
    if name == bench.BARE:  # the ceiling: bench/bare_passthrough.py, counted the same way
        gw = subprocess.Popen([*valgrind, str(HERE / "bare_passthrough.py"), "--upstream", bench.MOCK,
                               "--port", str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        key_limits = None
    else:
        config, key_limits = bench.VARIANTS[name]
        code = Path(checkout).resolve() if checkout else bench.REPO
        env = {**os.environ, "PARROTROUTER_HOME": str(home), "PARROTROUTER_MASTER_KEY": bench.KEY,
               "PYTHONHASHSEED": "0", **bench.VARIANT_ENV.get(name, {})}
        gw = subprocess.Popen([*valgrind, "-m", "parrotrouter", "serve", "--config",
                               str(bench.config_path(config, home)), "--port", str(PORT)],
                              env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait(f"http://127.0.0.1:{PORT}/ready", timeout=600)
        token = bench.ordinary_key(PORT, key_limits) if key_limits is not None else bench.KEY
        body = {"model": "gpt-4o-mini", "stream": STREAM, "temperature": 0.2, "max_tokens": 300,
                "messages": [{"role": "system", "content": "You are a careful assistant."},
                             {"role": "user", "content": "Outline gateway timeouts in a short numbered list. " * 8}]}
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}/v1", timeout=120,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            def send(n: int) -> None:
                for _ in range(n):
                    resp = client.post("/chat/completions", content=json.dumps(body))
                    assert resp.status_code == 200, resp.text[:300]
            send(WARMUP)
            time.sleep(1)  # the ledger's batch of the warm-up written before counting starts
            subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
            send(N)
            time.sleep(1)  # ... and the measured requests' batch while counting
            subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, capture_output=True)
        time.sleep(1)
        return _count(out_dir, gw.pid) / N
    finally:
        gw.terminate()
        try:
            gw.wait(60)
        except subprocess.TimeoutExpired:
            gw.kill()
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    if not shutil.which("valgrind"):
        sys.exit("valgrind is needed (Debian package 'valgrind')")
    variants = sys.argv[1:] or ["stateless", "key"]
    run_dir = Path(tempfile.mkdtemp(prefix="pr-bench-"))
    mock = bench.start_mock(run_dir)
    try:
        rows = [(v, measure(v)) for v in variants]
    finally:
        mock.terminate()
        mock.wait()
    print(f"\ninstructions per {'streamed ' if STREAM else ''}request ({N} requests after {WARMUP} warm-up)")
    print("| variant | instructions/request |\n|---|---:|")
    for variant, count in rows:
        print(f"| {variant} | {count:,.0f} |")


if __name__ == "__main__":
    main()
