"""How hh's long jobs end on Ctrl-C and SIGTERM. stdlib only.

A field device is stopped by systemd (SIGTERM), a workstation run by Ctrl-C (SIGINT): both must
end the same way, saving what there is. `sigterm_as_interrupt` makes SIGTERM a
KeyboardInterrupt for a block; `held_interrupts` holds both back to the code's safe points
(between two training batches), `deferred_interrupt` while files are being committed, so an
interrupt lands on a consistent folder.

A signal the process started with ignored stays ignored: a shell starts a background job (`cmd &`
from a script, nohup) with SIGINT ignored, and a Ctrl-C meant for the foreground must not stop it.
Every block puts back exactly the handler it found.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


def _replace_handler(sig: int, handler: Callable[[int, Any], None]) -> Any:
    """Install `handler` for `sig` unless `sig` is ignored; the handler found, to put back with
    `_restore_handler` (None where Python did not install it: SIG_DFL is then put back)."""
    found = signal.getsignal(sig)
    if found is signal.SIG_IGN:
        return found
    signal.signal(sig, handler)
    return found


def _restore_handler(sig: int, found: Any) -> None:
    signal.signal(sig, signal.SIG_DFL if found is None else found)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd stop, docker stop, kill) ends the block the way Ctrl-C does: its
    KeyboardInterrupt handling saves what there is and prints the summary."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = _replace_handler(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        _restore_handler(signal.SIGTERM, previous)


@contextlib.contextmanager
def sighup_calls(callback: Callable[[], None]) -> Iterator[None]:
    """SIGHUP (systemctl reload, kill -HUP) calls `callback` for the block, instead of ending the
    process. The callback runs in the main thread between two bytecodes: it must only set a flag."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        yield
        return
    # Installed even where SIGHUP was ignored (nohup): a reload never ends the process.
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: callback())
    try:
        yield
    finally:
        _restore_handler(signal.SIGHUP, previous)


class HeldInterrupt:
    """What `held_interrupts` saw: whether SIGINT or SIGTERM came, to be acted on at a safe point."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def raise_if_received(self) -> None:
        if self.received:
            raise KeyboardInterrupt


@contextlib.contextmanager
def held_interrupts(second_raises: bool = False) -> Iterator[HeldInterrupt]:
    """Hold SIGINT and SIGTERM back for the block: the code calls `raise_if_received()` at its
    safe points, and the block's end raises KeyboardInterrupt if one came.

    Why: a KeyboardInterrupt raised at any bytecode can land inside TensorFlow's own Python
    (an iterator half made, a function being freed) and crash the process in C++ instead of
    saving (seen as SIGSEGV after Ctrl-C between two training epochs). second_raises: a second
    signal raises at once, for a user who will not wait for the next safe point.
    """
    held = HeldInterrupt()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum, frame):
        held.received.append(signum)
        if second_raises and len(held.received) > 1:
            raise KeyboardInterrupt

    previous = {sig: _replace_handler(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            _restore_handler(sig, handler)
    held.raise_if_received()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block, then raise KeyboardInterrupt if one came.

    Wraps the writes that commit a training epoch: an interrupt then lands on a consistent folder.
    """
    with held_interrupts():
        yield
