"""What this machine lets the process use: cores and memory. stdlib only.

The trainer sizes its decode pool and the device its interpreter threads from the cores the
process may run on; hh-camera's summary and hh-bench report memory. Both read Linux's own
accounting, which honours taskset, cpusets (docker --cpuset-cpus) and exec.
"""

from __future__ import annotations

import os
import sys

# XNNPACK gains little beyond this many interpreter threads on a phone-class CPU.
MAX_INTERPRETER_THREADS = 4


def usable_cores() -> int:
    """The cores this process may run on: honours taskset and cpusets, which os.cpu_count()
    does not."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_threads(reserve: int = 0) -> int:
    """Interpreter threads: the usable cores minus `reserve` left for other work (hh-camera
    leaves one to its capture thread, which decodes while the model runs), at most
    MAX_INTERPRETER_THREADS."""
    return max(1, min(MAX_INTERPRETER_THREADS, usable_cores() - reserve))


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux /proc; peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a device process started
    # from a big parent (a test runner holding TensorFlow) would report the parent's peak.
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except (OSError, ValueError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes on macOS, KiB on Linux
