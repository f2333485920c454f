#!/usr/bin/env bash
# make test-arm: the Raspberry Pi's CPU (arm64) gives x86's answers, byte for byte.
#
# A Debian 12 arm64 root (the base of 64-bit Raspberry Pi OS Bookworm, Python 3.11), built with
# mmdebstrap and run under qemu-user-static; inside it, the README's own Pi install (`python3 -m
# venv --system-site-packages .venv && .venv/bin/pip install '.[edge]'`) from this checkout;
# then tests/arm64/parity.py measures the same files on x86 and on emulated Pi 4 (cortex-a72) and
# Pi 5 (cortex-a76) CPUs and compares every answer. Needs root (or sudo) on Debian/Ubuntu.
# The built root is kept in $HH_ARM64_CACHE (rebuilt when this recipe changes); emulated
# timings say nothing about a Pi and are never reported as Pi numbers.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
CACHE=${HH_ARM64_CACHE:-/var/cache/hh-arm64}
CPUS=${HH_ARM64_CPUS:-cortex-a72 cortex-a76}
SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
RECIPE="arm64 $SUITE $PACKAGES v1"
KEY=$(echo "$RECIPE" | sha256sum | cut -c1-12)
ROOT=$CACHE/root-$KEY
WORK=$REPO/build/arm64
started=$(date +%s)
say() { echo "[test-arm $(($(date +%s) - started))s] $*"; }

# One run at a time per machine: runs share the root and build/arm64.
$SUDO mkdir -p "$CACHE"
$SUDO touch "$CACHE/.lock" && $SUDO chmod 666 "$CACHE/.lock"
exec 9>>"$CACHE/.lock"
flock 9

# 1. The emulator: Debian's qemu-user-static, registered with binfmt_misc (the F flag makes the
#    kernel open the emulator itself, so nothing needs copying into the root).
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    $SUDO mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || $SUDO update-binfmts --enable qemu-aarch64

# 2. The root, built once per recipe (2-11 minutes on 2 cores; HH_ARM64_MIRROR names another mirror).
if [ ! -x "$ROOT/usr/bin/python3" ]; then
    say "building the Debian 12 arm64 root (once per machine): $ROOT"
    $SUDO rm -rf "$ROOT.partial" && $SUDO mkdir -p "$CACHE"
    $SUDO mmdebstrap --quiet --arch=arm64 --variant=apt --include="$PACKAGES" "$SUITE" "$ROOT.partial" \
        "${HH_ARM64_MIRROR:-http://deb.debian.org/debian}"
    $SUDO mv "$ROOT.partial" "$ROOT"
fi
# pip inside the root uses the host's package index and certificates; LiteRT reads
# /proc/cpuinfo, which qemu 7.2 passes through from the x86 host (LiteRT then segfaults at
# load): the root gets an ARM one, bind-mounted over it below.
$SUDO cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
$SUDO cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
if [ -f /etc/pip.conf ]; then $SUDO cp /etc/pip.conf "$ROOT/etc/pip.conf"; fi
$SUDO install -m 644 tests/arm64/cpuinfo "$ROOT/etc/hh-arm-cpuinfo"

# 3. The files to measure, and x86's answers (the model is trained here: TensorFlow is x86-only
#    in this project's install).
$SUDO rm -rf "$WORK" && mkdir -p "$WORK"
say "making a model, near-boundary images, photos up to 4000x3000 and a video"
.venv/bin/python tests/arm64/parity.py make "$WORK" >"$WORK/make.log" 2>&1 || { tail -20 "$WORK/make.log"; exit 1; }
.venv/bin/python tests/arm64/parity.py measure "$WORK" "$WORK/x86_64.json"

# 4. Inside the root: this checkout (its files, not its venvs or builds) and the README's install command.
#    A private mount namespace: the binds vanish with it, whatever happens.
say "installing hh[edge] inside the arm64 root as the README says"
$SUDO rm -rf "$ROOT/home/pi/hh-src" && $SUDO mkdir -p "$ROOT/home/pi/hh-src" "$ROOT$WORK"
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | $SUDO tar -xf - -C "$ROOT/home/pi/hh-src"
run_in_root() {  # QEMU_CPU, then the command
    local cpu=$1
    shift
    $SUDO env QEMU_CPU="$cpu" unshare --mount --propagation private bash -c '
        set -e
        root=$1; work=$2; shift 2
        mount --bind /proc "$root/proc"
        mount --bind "$root/etc/hh-arm-cpuinfo" "$root/proc/cpuinfo"
        mount --bind /sys "$root/sys"  # the cpuinfo library reads the processor lists there
        mount --bind "$work" "$root$work"
        exec chroot "$root" env HOME=/root PATH=/usr/bin:/bin /bin/sh -c "$*"' _ "$ROOT" "$WORK" "$@"
}
run_in_root cortex-a72 "cd /home/pi/hh-src && python3 -m venv --system-site-packages .venv && .venv/bin/pip install --quiet '.[edge]'" \
    2> >(grep -v "^WARNING: Location\|^\[notice\]" >&2)
# The README's line for the Pi camera module: a simplejpeg for numpy 2 (picamera2 itself needs
# Raspberry Pi OS's libcamera, which Debian lacks; tests/test_picamera.py covers hh's side).
SIMPLEJPEG=$(.venv/bin/python -c "from hh.edge.capture import SIMPLEJPEG_FOR_NUMPY_2 as v; print(v)")
run_in_root cortex-a72 "cd /home/pi/hh-src && .venv/bin/pip install --quiet --ignore-installed simplejpeg==$SIMPLEJPEG" \
    2> >(grep -v "^WARNING: Location\|^\[notice\]" >&2)
run_in_root cortex-a72 "/home/pi/hh-src/.venv/bin/python -c 'import hh.edge.runtime, simplejpeg, numpy, platform; print(\"hh[edge] on\", platform.machine(), \"numpy\", numpy.__version__, \"simplejpeg\", simplejpeg.__version__)'"

# 5. The same measurements on each emulated Pi CPU, then every answer compared with x86's.
outputs=()
for cpu in $CPUS; do
    say "measuring on emulated $cpu"
    run_in_root "$cpu" "/home/pi/hh-src/.venv/bin/python /home/pi/hh-src/tests/arm64/parity.py measure $WORK $WORK/arm64-$cpu.json"
    outputs+=("$WORK/arm64-$cpu.json")
done
.venv/bin/python tests/arm64/parity.py compare "$WORK/x86_64.json" "${outputs[@]}"
say "done"
