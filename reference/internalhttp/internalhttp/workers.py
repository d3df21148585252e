"""The socket server's worker pool: a bounded number of daemon threads running tasks.

Internal to :mod:`internalhttp.serving`. A task is one connection's turn:
reading a request body, calling the application, writing the response.

>>> import threading
>>> done = threading.Event()
>>> pool = WorkerPool(2, "doc")
>>> pool.submit(done.set)
>>> done.wait(5)
True
>>> pool.stop(5)
[]
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, List, Optional, Set

__all__ = ["WorkerPool"]


class WorkerPool:
    """At most ``size`` daemon threads running tasks from a queue.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit,
    so one handler that never returns would keep the process from exiting;
    these are daemons, like the connection threads this server used to have.
    Threads are started as tasks need them.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._tasks: queue.SimpleQueue[Optional[Callable[[], None]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._busy: Set[threading.Thread] = set()
        self._idle = 0
        self._pending = 0

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            self._pending += 1
            if self._pending > self._idle and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._tasks.put(task)

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                self._idle += 1
            task = self._tasks.get()
            with self._lock:
                self._idle -= 1
                if task is None:
                    return
                self._pending -= 1
                self._busy.add(me)
            try:
                task()
            finally:
                with self._lock:
                    self._busy.discard(me)

    def stop(self, timeout: float) -> List[threading.Thread]:
        """Let queued tasks run, end the threads; return those still busy after ``timeout``."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(None)  # after every task already queued
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():  # a handler stopping its own server
                thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive() and t is not threading.current_thread()]
