#!/usr/bin/env python3
"""Time to the first chunk of a stream, one request at a time on one keep-alive connection.

Sends streamed chat completions and times, for each, from sending the request to reading the first
`data:` line; the rest of the stream is read to its end before the next request. The same client
measures the mock directly and every gateway, so its own cost cancels out of "added" figures.
Prints one JSON line: {"requests", "p50_ms", "p99_ms"}.

    python bench/ttft.py http://127.0.0.1:8000/v1 --seconds 3 --header "Authorization: Bearer pr-..."
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from urllib.parse import urlsplit


def first_chunk_times(url: str, body: bytes, headers: dict[str, str], seconds: float, warmup: int) -> list[float]:
    """Seconds from request to first `data:` line, one per request sent after `warmup` ones."""
    parts = urlsplit(url.rstrip("/") + "/chat/completions")
    assert parts.hostname in ("127.0.0.1", "localhost"), "loopback only"
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    headers = {"Content-Type": "application/json", **headers}
    times: list[float] = []
    deadline = time.perf_counter() + seconds if warmup == 0 else None
    n = 0
    while deadline is None or time.perf_counter() < deadline:
        start = time.perf_counter()
        conn.request("POST", parts.path, body=body, headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status} from {url}: {resp.read()[:300]!r}")
        first = None
        while line := resp.readline():
            if first is None and line.startswith(b"data:"):
                first = time.perf_counter() - start
        if first is None:
            raise RuntimeError(f"no data: line in the stream from {url}")
        n += 1
        if n > warmup:
            times.append(first)
        elif n == warmup:
            deadline = time.perf_counter() + seconds
    conn.close()
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--body", required=True, help="the request's JSON")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    times = first_chunk_times(args.url, args.body.encode(), headers, args.seconds, args.warmup)
    print(json.dumps({"requests": len(times), "p50_ms": statistics.median(times) * 1e3,
                      "p99_ms": percentile(times, 99) * 1e3}))


if __name__ == "__main__":
    main()
