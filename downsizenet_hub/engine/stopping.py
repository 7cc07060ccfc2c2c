"""Ctrl-C as a request to stop at the next step boundary.

The first SIGINT only sets :attr:`StopRequest.requested`; the training loop finishes the step it
is in, saves a checkpoint and stops. The handler then steps aside, so a second Ctrl-C raises
:class:`KeyboardInterrupt` at once (the loop then keeps the last checkpoint). The handler is
installed only from the main thread and restored on exit.

SIGTERM is deliberately left alone: a Python handler runs only when the interpreter regains
control, so catching SIGTERM would make a process stuck in a collective impossible to terminate
without SIGKILL (torchrun stops the other ranks with SIGTERM when one fails).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT,)


class StopRequest:
    """Context manager turning the first SIGINT into ``requested = True``."""

    def __init__(self, notify: Callable[[str], None] | None = None) -> None:
        self.requested = False
        self._notify = notify
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self._restore(signum)
        if self._notify is not None:
            self._notify(
                "Ctrl-C received: stopping after this step (Ctrl-C again to stop at once)."
            )

    def _restore(self, signum: int) -> None:
        if signum in self._previous:
            previous = self._previous.pop(signum)
            # None: a handler installed outside Python; the default is the closest we can restore.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum in list(self._previous):
            self._restore(signum)
