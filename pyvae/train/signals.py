"""Ctrl-C (SIGINT) and SIGTERM during training: a request to stop at the next safe point.

Within :class:`StopSignals`, the first signal sets ``StopSignals.requested``; the
loop stops after the step in progress (its update and bookkeeping done), so the
checkpoint it writes is the state of the last completed step, never a half-done one. A
second signal stops at once (``KeyboardInterrupt``, nothing saved).

A process blocked in a collective with another process (distributed training) cannot run
Python's signal handlers; with ``blocked_grace_s`` a watcher thread, woken by the signal
through ``signal.set_wakeup_fd``, ends such a process if its handler has not run within
that many seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from typing import Any

__all__ = ["StopSignals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """A context manager turning SIGINT and SIGTERM into a stop request (see the module).

    Args:
        announce: print what happens when the first signal arrives (the main process).
        blocked_grace_s: end the process if a signal's handler has not run within this
            many seconds (it is blocked waiting for another process); None: never.
    """

    def __init__(self, announce: bool = True, blocked_grace_s: float | None = None):
        self.announce, self.blocked_grace_s = announce, blocked_grace_s
        self.requested = False  # a first signal came: stop at the next safe point
        self.forced = False  # a second signal came: stopped at once, nothing saved
        self._previous: dict[int, Any] = {}
        self._handled = 0  # signals whose Python handler has run
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._previous_wakeup_fd = -1  # e.g. an event loop's, given back on exit

    def _handle(self, signum: int, frame: Any) -> None:
        self._handled += 1
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            print(
                "\nstopping after this step (the checkpoint saves it); press Ctrl-C again "
                "to stop at once without saving",
                file=sys.stderr,
            )

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only
        self._previous = {s: signal.signal(s, self._handle) for s in _SIGNALS}
        if self.blocked_grace_s is not None:
            self._watch()
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
        if self._wakeup is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            for end in self._wakeup:
                end.close()
            self._wakeup = None

    def _watch(self) -> None:
        read_end, write_end = socket.socketpair()
        write_end.setblocking(False)
        self._previous_wakeup_fd = signal.set_wakeup_fd(
            write_end.fileno(), warn_on_full_buffer=False
        )
        self._wakeup = (read_end, write_end)
        threading.Thread(target=self._watcher, args=(read_end,), daemon=True).start()

    def _watcher(self, read_end: socket.socket) -> None:
        received = 0
        while True:
            try:
                got = read_end.recv(1)
            except OSError:  # closed: training is over
                return
            if not got:
                return
            if got[0] not in _SIGNALS:
                continue
            received += 1
            deadline = time.monotonic() + self.blocked_grace_s
            while self._handled < received and self._wakeup is not None:
                if time.monotonic() > deadline:
                    print(
                        f"\nprocess {os.getpid()}: signal {got[0]} while waiting for the "
                        "other processes, which stopped responding; stopping now (the last "
                        "checkpoint is kept)",
                        file=sys.stderr,
                        flush=True,
                    )
                    os._exit(128 + got[0])
                time.sleep(0.05)
