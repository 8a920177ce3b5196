"""A one-item mailbox between the executor and the inference worker.

Only the newest item waits: putting a new one hands back the one it replaced, which the
caller counts as dropped. Latency therefore never builds up behind a slow model: the
worker always picks the freshest synchronised pair.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> T | None:
        """Store item; return the older item it replaced (not yet taken), if any."""
        with self._cond:
            old, self._item = self._item, item
            self._cond.notify()
            return old

    def take(self, timeout: float | None = None) -> T | None:
        """Wait for and remove the item; None on timeout or after close()."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> T | None:
        with self._cond:
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake a waiting taker for good (worker shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
