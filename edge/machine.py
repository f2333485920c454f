"""What this machine lets the process use: cores and memory. stdlib only.

The trainer sizes its decode pool and the device its interpreter threads from the cores the
process may run on, and the trainer its RAM budget from the memory it may use; hh-camera's
summary and hh-bench report memory. All read Linux's own accounting, which honours taskset,
cpusets (docker --cpuset-cpus), cgroup memory limits (docker --memory) and exec.
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


UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as a number near 2**63


def memory_limit(proc: str = "/proc", cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Bytes of memory this process may use: the machine's RAM, or less where a cgroup limit
    (a container's --memory, a systemd MemoryMax=) on the process's own group or any group
    above it says so. cgroup v2 (memory.max) and v1 (memory.limit_in_bytes) are both read."""
    limits = [_machine_memory(proc)]
    for directory, name in _memory_cgroup_dirs(proc, cgroup_root):
        try:
            with open(os.path.join(directory, name)) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < UNLIMITED:
            limits.append(int(text))
    return min(limit for limit in limits if limit > 0)


def _machine_memory(proc: str) -> int:
    try:
        with open(os.path.join(proc, "meminfo")) as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not Linux nor macOS: no limit known
        return UNLIMITED


def _memory_cgroup_dirs(proc: str, cgroup_root: str) -> list[tuple[str, str]]:
    """(folder, limit file) of the process's memory cgroup and every group above it. Inside a
    container the group's own folder is often the mount's root, so that is always looked at."""
    found: list[tuple[str, str]] = []
    try:
        with open(os.path.join(proc, "self", "cgroup")) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2: one tree, memory.max in each group
            base, name = cgroup_root, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = os.path.join(cgroup_root, "memory"), "memory.limit_in_bytes"
        else:
            continue
        relative = path.strip("/")
        while True:
            found.append((os.path.join(base, relative) if relative else base, name))
            if not relative:
                break
            relative = os.path.dirname(relative)
    return found
