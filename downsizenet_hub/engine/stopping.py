"""Ctrl-C and SIGTERM as a request to stop at the next step or evaluation batch.

The first SIGINT (Ctrl-C) or SIGTERM (what ``kill``, ``timeout`` and job schedulers send, and what
``torchrun`` forwards to its workers when it is itself terminated) only sets
:attr:`StopRequest.requested`; the training loop finishes the step or evaluation batch it is in
(a scheduler such as Slurm sends SIGKILL 30 s after SIGTERM, and a whole evaluation can take
minutes), saves a checkpoint, marks the run interrupted and stops. The handler of that signal
then steps aside, so a second Ctrl-C raises :class:`KeyboardInterrupt` at once (the loop then
keeps the last checkpoint) and a second SIGTERM terminates the process as it would have without
a handler. Handlers are installed only from the main thread and restored on exit; outside
training (building the scenes data, loading a model) no handler is installed and SIGTERM ends
the process at once, its files written atomically (a build's staging folder is removed by the
next build once its process is gone).

A Python handler runs only when the interpreter regains control: a process stuck inside a
collective (a peer died) does not see the first SIGTERM. ``torchrun`` follows its SIGTERM with
SIGKILL after a grace period, and a second SIGTERM ends it at once, so it can always be stopped.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: How each signal is named in messages.
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopRequest:
    """Context manager turning the first SIGINT or SIGTERM into ``requested = True``."""

    def __init__(self, notify: Callable[[str], None] | None = None) -> None:
        self.requested = False
        #: "Ctrl-C" or "SIGTERM": what asked to stop (None until something did).
        self.reason: str | None = None
        self._notify = notify
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        name = SIGNAL_NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
        self.reason = self.reason or name
        self._restore(signum)
        if self._notify is not None:
            self._notify(
                f"{name} received: stopping after this step or evaluation batch ({name} again "
                "to stop at once)."
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
