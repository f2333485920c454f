"""How hh's long jobs end on Ctrl-C and SIGTERM. stdlib only.

A field device is stopped by systemd (SIGTERM), a workstation run by Ctrl-C (SIGINT): both must
end the same way, saving what there is. `sigterm_as_interrupt` makes SIGTERM a
KeyboardInterrupt for a block; `deferred_interrupt` holds both back while files are being
committed, so an interrupt lands on a consistent folder.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd stop, docker stop, kill) ends the block the way Ctrl-C does: its
    KeyboardInterrupt handling saves what there is and prints the summary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sighup_calls(callback: Callable[[], None]) -> Iterator[None]:
    """SIGHUP (systemctl reload, kill -HUP) calls `callback` for the block, instead of ending the
    process. The callback runs in the main thread between two bytecodes: it must only set a flag."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: callback())
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block, then raise KeyboardInterrupt if one came.

    Wraps the writes that commit a training epoch: an interrupt then lands on a consistent folder.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt
