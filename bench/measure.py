"""bench/run.py's bookkeeping: CPU and memory of process trees from /proc, one sample per measurement
(with what the load generator, the mock and the rest of the machine used meanwhile), and the report."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a supervisor's workers, nginx's worker), alive now."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # gone meanwhile
                todo.extend(int(c) for c in task.read_text().split())
    return pids


def tree_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of these processes, all their threads (the ledger writer's included)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def tree_rss(pids: list[int]) -> float:
    """The largest resident set among these processes, MB (per worker: the supervisor is small)."""
    largest = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                largest = max(largest, int(line.split()[1]))
    return largest / 1024


def busy_cores() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / _TICK, sum(ticks[:8]) / _TICK


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, the first-chunk client: waited for
    return usage.ru_utime + usage.ru_stime


@dataclass
class Sample:
    rps: float
    p50: float  # ms
    p99: float
    cpu_us: float  # the server's CPU per request, all its processes and threads
    load_cores: float  # CPUs used by the load generator (wrk or the first-chunk client)
    mock_cores: float
    server_cores: float  # CPUs the server used (several workers: up to their number)
    other_cores: float  # CPUs used by everything else on the machine (other jobs: a noisy run)


class Probe:
    """CPU counters read before one measurement; `sample` reads them again after it."""

    def __init__(self, server: list[int], mock: list[int]) -> None:
        self.server, self.mock = server, mock
        self.t0 = os.times().elapsed
        self.server_cpu, self.mock_cpu, self.load_cpu = tree_cpu(server), tree_cpu(mock), _children_cpu()
        self.busy = busy_cores()[0]

    def sample(self, rps: float, p50: float, p99: float, done: int) -> Sample:
        wall = max(os.times().elapsed - self.t0, 1e-3)
        server = tree_cpu(self.server) - self.server_cpu
        load = (_children_cpu() - self.load_cpu) / wall
        mock = (tree_cpu(self.mock) - self.mock_cpu) / wall
        busy = (busy_cores()[0] - self.busy) / wall
        return Sample(rps, p50, p99, server / done * 1e6 if done and self.server else 0.0, load, mock,
                      server / wall, max(busy - load - mock - server / wall, 0.0))


def _workers(name: str) -> int:
    head = name.partition("@")[0]
    return int(head.partition(":w")[2] or 1)


def _median(runs: list[Sample], attr: str) -> float:
    return float(statistics.median(getattr(s, attr) for s in runs))


def report(results: dict[str, dict[str, list[Sample]]], rss: dict[str, float], baselines: tuple[str, ...]) -> None:
    """Medians over the rounds: req/s as ratios to `bare` (and to `stateless`/`off` when measured),
    latencies added to the mock's own, CPU per request (the steadier figure on a noisy machine: it
    is what limits throughput when every core runs a worker), RSS; then workers' scaling."""
    direct = results["direct (mock)"]
    bases = [next((n for n in results if n.partition("@")[0] == b), None) for b in baselines]
    bare, other = bases[0], next((b for b in bases[1:] if b), None)
    cols = [f"vs {b}" for b in (bare, other) if b] + ([f"CPU vs {bare}"] if bare else [])
    if bare and any(":w" in n for n in results):
        cols = [c + " (same workers)" if bare in c else c for c in cols]
    print(f"| variant | scenario | req/s |{''.join(f' {c} |' for c in cols)} p50 ms | p99 ms | added p50 | added p99 | "
          f"CPU µs/req | server CPUs | wrk/client CPUs | mock CPUs | other jobs' CPUs |")
    print("|---|---|---:|" + "---:|" * len(cols) + "---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, res in results.items():
        for scenario, runs in res.items():
            rps = _median(runs, "rps")
            is_direct = name.startswith("direct")
            same = f"{bare}:w{_workers(name)}"  # a row with N workers against bare:wN, when measured
            own_bare = same if same in results else bare
            ratios = [f"{rps / _median(results[b][scenario], 'rps'):.1%}" for b in (own_bare, other) if b]
            if own_bare:  # the steadier figure on a busy machine: capacity per CPU, bare's µs/req / this one's
                bare_cpu = _median(results[own_bare][scenario], "cpu_us")
                ratios.append("-" if is_direct or scenario == "ttft" else f"{bare_cpu / _median(runs, 'cpu_us'):.1%}")
            p50, p99 = _median(runs, "p50"), _median(runs, "p99")
            added = ["-", "-"] if is_direct else [f"{p50 - _median(direct[scenario], 'p50'):.2f}",
                                                  f"{p99 - _median(direct[scenario], 'p99'):.2f}"]
            rate = "-" if scenario == "ttft" else f"{rps:.0f}"
            cpu = "-" if is_direct or scenario == "ttft" else f"{_median(runs, 'cpu_us'):.0f}"
            if scenario == "ttft":
                ratios = ["-"] * len(cols)
            print(f"| {name} | {scenario} | {rate} |{''.join(f' {r} |' for r in ratios)} {p50:.2f} | {p99:.2f} | "
                  f"{added[0]} | {added[1]} | {cpu} | {_median(runs, 'server_cores'):.2f} | "
                  f"{_median(runs, 'load_cores'):.2f} | {_median(runs, 'mock_cores'):.2f} | "
                  f"{_median(runs, 'other_cores'):.2f} |")
    print("\n(ttft rows: time to the first `data:` line of a stream at c=1; 'added' = minus the mock's own)")
    print("\n| variant | RSS MB (largest process) |\n|---|---:|")
    for name, mb in rss.items():
        print(f"| {name} | {mb:.0f} |")
    scaled = []
    for name in results:
        head, at, checkout = name.partition("@")
        one = head.partition(":w")[0] + at + checkout
        if one != name and one in results:
            scaled.append((name, one))
    if scaled:
        ncpu = len(os.sched_getaffinity(0))
        print(f"\n| several workers / one worker | scenario | req/s ratio | CPU µs/req ratio | CPU-bound ceiling on "
              f"{ncpu} CPUs |\n|---|---|---:|---:|---:|")
        for name, one in scaled:
            for scenario, runs in results[name].items():
                if scenario == "ttft":
                    continue
                one_cpu = _median(results[one][scenario], "cpu_us")
                print(f"| {name} / {one} | {scenario} | "
                      f"{_median(runs, 'rps') / _median(results[one][scenario], 'rps'):.2f}x | "
                      f"{_median(runs, 'cpu_us') / one_cpu:.2f} | {_ceiling(one_cpu, direct[scenario], ncpu):.2f}x |")
        print("\n(ceiling: one worker has a CPU of its own, the load generator and the mock the others; several "
              "workers share every CPU with them: ncpu x server CPU / (server CPU + wrk and mock CPU per request, "
              "from the direct row))")


def _ceiling(server_us: float, direct: list[Sample], ncpu: int) -> float:
    """The most several workers can gain when CPU-bound: every CPU split between the gateway and the
    load generator + mock (their cost per request measured against the mock directly)."""
    load_us = statistics.median((s.load_cores + s.mock_cores) / s.rps * 1e6 for s in direct)
    return ncpu * server_us / (server_us + load_us)
