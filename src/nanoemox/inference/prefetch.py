"""`prefetched`: prepare the next items in a background thread while the model answers this one.

Decoding media (PyAV, face detection, resampling) releases the GIL for most of its time,
so one background thread overlaps it with the model. Both the record runner (chunks of
records) and timelines (windows of a long video) read their inputs through this.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

_DONE = object()


def prefetched(items: Iterable[In], prepare: Callable[[In], Out], ahead: int = 1,
               name: str = "nanoemox-prefetch") -> Iterator[Out]:
    """`prepare(item)` for each item, in order, computed in one background thread up to `ahead` items ahead.

    The items are also iterated in that thread. An exception of `items` or `prepare` is
    raised in the consumer, at the position it happened. Closing the iterator early
    (break, `close()`, garbage collection) stops the thread.
    """
    out: queue.Queue = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                out.put(prepare(item))
            out.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            out.put(exc)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass
