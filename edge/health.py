"""Device health: how hot the SoC is, and whether the firmware throttles it. stdlib only.

On a Pi in the sun, heat throttles the CPU and the FPS falls without a word. Linux reports
temperatures under /sys/class/thermal/thermal_zone*/temp (millidegrees C); the Pi firmware
reports throttling as a bit field (/sys/devices/platform/soc/soc:firmware/get_throttled, or
`vcgencmd get_throttled`). A sensor that is missing (most workstations, this CI machine) is
simply absent from the result, never an error.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PI_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"
THERMAL = "sys/class/thermal"
# The firmware's get_throttled bits: 0-3 are the state now, 16-19 "has happened since boot".
THROTTLE_FLAGS = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}


def read_temperature(root: Path) -> float | None:
    """The hottest thermal zone, in degrees C, or None without sensors."""
    readings = []
    for zone in sorted((root / THERMAL).glob("thermal_zone*")):
        try:
            readings.append(int((zone / "temp").read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    return max(readings) if readings else None


def read_throttled_bits(root: Path, use_vcgencmd: bool = True) -> int | None:
    try:
        return int((root / PI_THROTTLED).read_text().strip(), 16)
    except (OSError, ValueError):
        pass
    if use_vcgencmd and shutil.which("vcgencmd"):
        try:
            out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=2).stdout
            return int(out.strip().split("=")[-1], 16)
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
    return None


def decode_throttled(bits: int) -> tuple[list[str], list[str]]:
    """(flags set now, flags that have been set since boot)."""
    now = [name for bit, name in THROTTLE_FLAGS.items() if bits & (1 << bit)]
    since_boot = [name for bit, name in THROTTLE_FLAGS.items() if bits & (1 << (bit + 16))]
    return now, since_boot


def read_health(root: str | Path = "/", use_vcgencmd: bool = True) -> dict:
    """{"temperature_c": ..., "throttled": [...], "throttled_since_boot": [...]}, with only the
    keys whose sensor exists on this device."""
    root = Path(root)
    health: dict = {}
    temperature = read_temperature(root)
    if temperature is not None:
        health["temperature_c"] = round(temperature, 1)
    bits = read_throttled_bits(root, use_vcgencmd and root == Path("/"))
    if bits is not None:
        health["throttled"], health["throttled_since_boot"] = decode_throttled(bits)
    return health


class HealthWatch:
    """Reads health at most every `interval` seconds; remembers the peak temperature and
    whether throttling was ever seen, and reports a first throttling once."""

    def __init__(self, root: str | Path = "/", interval: float = 10.0, on_throttle=None):
        self.root, self.interval = Path(root), interval
        self.on_throttle = on_throttle or (lambda flags: None)
        self.last_read = float("-inf")
        self.peak_temperature_c: float | None = None
        self.throttled_seen: list[str] = []

    def due(self, now: float) -> bool:
        return now - self.last_read >= self.interval

    def read(self, now: float) -> dict:
        self.last_read = now
        health = read_health(self.root)
        temperature = health.get("temperature_c")
        if temperature is not None:
            self.peak_temperature_c = max(temperature, self.peak_temperature_c or temperature)
        flags = health.get("throttled") or []
        if flags and not self.throttled_seen:
            self.on_throttle(flags)
        for flag in flags:
            if flag not in self.throttled_seen:
                self.throttled_seen.append(flag)
        return health

    def summary(self) -> dict:
        out: dict = {}
        if self.peak_temperature_c is not None:
            out["peak_temperature_c"] = self.peak_temperature_c
        if self.throttled_seen:
            out["throttled"] = self.throttled_seen
        return out
