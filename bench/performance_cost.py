#!/usr/bin/env python3
"""CPU instructions the performance observer costs per request (observe/performance.py), counted
by valgrind's callgrind: `finished()` on the request path plus its share of the fold.

    valgrind --tool=callgrind python bench/performance_cost.py off   # the seam with no observer
    valgrind --tool=callgrind python bench/performance_cost.py on    # finished() and the fold
    valgrind --tool=callgrind python bench/performance_cost.py path  # finished() only

(total(on) - total(off)) / N is the cost per request; compare with `bench/callgrind.py stateless`.
"""

from __future__ import annotations

import sys

from parrotrouter.accounting.usage import Attempt, UsageRecord
from parrotrouter.observe import Observers
from parrotrouter.observe.performance import Performance, fold

N = 100_000


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "on"
    performance = Performance(300)
    observers = Observers([performance] if mode != "off" else [])
    records = [UsageRecord(id=str(i), endpoint="chat", requested_model="m", served_model="gpt-4o-mini",
                           latency_ms=12.0 + i % 50, completion_tokens=20,
                           attempts=[Attempt("openai", "openai/gpt-4o-mini", 200)]) for i in range(N)]
    for record in records:
        if observers:  # as serving/core.py calls the seam
            observers.finished(record, None)  # type: ignore[arg-type]
    if mode == "on":
        fold(list(performance.samples))


if __name__ == "__main__":
    main()
