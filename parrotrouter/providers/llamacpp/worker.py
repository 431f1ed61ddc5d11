"""One model, one thread: a bounded queue of jobs bridged to asyncio.

llama.cpp contexts are not thread-safe, so each model instance has a single worker thread. Jobs
beyond the queue bound are refused at once (503 `model_overloaded` with Retry-After) rather than
waiting unboundedly. A job streams items back to the event loop; when the consumer goes away the
job is told to stop between two tokens.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from ...errors import ModelOverloaded
from .engine import Cancelled

Emit = Callable[[Any], None]
Job = Callable[[threading.Event, Emit], None]


class _End:
    pass


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = _End()


class ModelWorker:
    def __init__(self, name: str, queue_size: int) -> None:
        self.name = name
        self.queue_size = queue_size
        self.pending = 0  # queued + running jobs
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"model-{name}")

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a plain function on the model thread (loading, tokenizing)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run(self, job: Job) -> AsyncIterator[Any]:
        if self.pending >= self.queue_size:
            raise ModelOverloaded(
                f"The local model '{self.name}' is busy ({self.pending} requests queued or running). "
                "Retry shortly.", retry_after=1)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            if cancel.is_set():
                emit(_END)
                return
            try:
                job(cancel, emit)
                emit(_END)
            except Cancelled:
                emit(_END)
            except BaseException as exc:
                emit(_Failure(exc))

        self.pending += 1
        future = loop.run_in_executor(self.executor, work)
        future.add_done_callback(self._done)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            cancel.set()

    def _done(self, _future: Any) -> None:
        self.pending -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
