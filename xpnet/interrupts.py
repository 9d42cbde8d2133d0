"""SIGINT and SIGTERM as a request to stop at a safe point, not a kill in the middle of a step.

A run that writes checkpoints checks the request between chunks of steps, saves, and stops;
a second Ctrl-C stops at once. Handlers can be set only from the main thread, so elsewhere the
request is never set and the signals keep their usual effect.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["StopRequest", "signals_to_stop"]


class StopRequest:
    """Whether a stop was asked for: ``signum`` is the signal that asked, or None."""

    def __init__(self):
        self.signum = None

    def ask(self, signum=signal.SIGTERM) -> None:
        """Ask to stop as if ``signum`` had arrived (another process of the run got one)."""
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextlib.contextmanager
def signals_to_stop(enabled: bool = True):
    """Within the block, SIGINT and SIGTERM set the yielded ``StopRequest`` instead of
    interrupting; the old handlers come back on leaving. ``enabled=False`` installs nothing."""
    request = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield request
        return

    def ask_to_stop(signum, frame):
        if request.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        request.signum = signum

    old = {s: signal.signal(s, ask_to_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for s, h in old.items():
            signal.signal(s, h)
